package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// Result is what one Load run measured.
type Result struct {
	Conns    int   // completed connections (connect, request, reply)
	Errors   int   // failed attempts
	FirstErr error // the first failure, to tell what went wrong
	// ErrKinds counts failures by message, to tell what went wrong.
	ErrKinds map[string]int
	Duration time.Duration // wall time of the run
	// Connect holds every successful connect() duration: SYN sent to
	// SYN-ACK received, the first packet's round trip.
	Connect []time.Duration
}

// Rate is completed connections per second.
func (r Result) Rate() float64 { return float64(r.Conns) / r.Duration.Seconds() }

// Percentile returns the p-th percentile (0..100) of connect latencies.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Connect) == 0 {
		return 0
	}
	s := slices.Clone(r.Connect)
	slices.Sort(s)
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}

func (r Result) String() string {
	s := fmt.Sprintf("%d conns in %v (%.0f/s), %d errors, first packet p50 %v p99 %v",
		r.Conns, r.Duration.Round(time.Millisecond), r.Rate(), r.Errors, r.Percentile(50), r.Percentile(99))
	if r.FirstErr != nil {
		s += fmt.Sprintf(" (first error: %v; by kind: %v)", r.FirstErr, r.ErrKinds)
	}
	return s
}

func (r *Result) fail(err error) {
	r.Errors++
	if r.FirstErr == nil {
		r.FirstErr = err
	}
	if r.ErrKinds == nil {
		r.ErrKinds = map[string]int{}
	}
	r.ErrKinds[err.Error()]++
}

// Options of one Load run.
type Options struct {
	Addr     string        // host:port to connect to
	Duration time.Duration // how long to run
	Workers  int           // concurrent connection loops (default 1)
	// Setup, when set, runs once at the start of each worker goroutine
	// (the benchmark locks the thread into a network namespace there).
	Setup func() error
}

// Load opens connections to o.Addr in a loop from o.Workers goroutines
// until o.Duration has passed or ctx ends: connect, send one byte, read the
// one-byte reply, close. The client closes first, so TIME_WAIT stays on
// the client, which can reuse such ports safely with
// net.ipv4.tcp_tw_reuse=1 (a server's TIME_WAIT would answer a reused
// port's SYN with an ACK, and the connection would stall for a second).
func Load(ctx context.Context, o Options) (Result, error) {
	if o.Workers <= 0 {
		o.Workers = 1
	}
	// The loop watches the clock, not a context deadline: on a loaded
	// machine a context's timer can fire late, and dials against an
	// already-passed deadline would fail instantly and count as errors.
	end := time.Now().Add(o.Duration)
	var mu sync.Mutex
	var total Result
	var setupErr error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r Result
			if o.Setup != nil {
				if err := o.Setup(); err != nil {
					mu.Lock()
					setupErr = err
					mu.Unlock()
					return
				}
			}
			d := net.Dialer{Timeout: time.Second}
			buf := make([]byte, 1)
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				c, err := d.DialContext(ctx, "tcp", o.Addr)
				if err != nil {
					if ctx.Err() == nil {
						r.fail(err)
					}
					continue
				}
				r.Connect = append(r.Connect, time.Since(t0))
				err = exchange(c, buf)
				c.Close()
				if err != nil {
					r.fail(err)
					continue
				}
				r.Conns++
			}
			mu.Lock()
			total.Conns += r.Conns
			total.Errors += r.Errors
			if total.FirstErr == nil {
				total.FirstErr = r.FirstErr
			}
			for k, n := range r.ErrKinds {
				if total.ErrKinds == nil {
					total.ErrKinds = map[string]int{}
				}
				total.ErrKinds[k] += n
			}
			total.Connect = append(total.Connect, r.Connect...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.Duration = time.Since(start)
	return total, setupErr
}

func exchange(c net.Conn, buf []byte) error {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte{'?'}); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	return nil
}

// Serve answers one byte on every connection on l and closes it once the
// client has; it returns when l is closed.
func Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 1)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
			_, _ = c.Read(buf) // until the client's FIN
		}()
	}
}
