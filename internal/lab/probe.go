package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// ProbeSpec says what a probe sends. The zero value is a TCP probe to port
// 80 with a 2 s timeout.
type ProbeSpec struct {
	Proto   string        // tcp (default), udp or icmp
	Port    int           // tcp and udp; 80 when 0
	Timeout time.Duration // how long to wait before "denied"; 2 s when 0
	// NoListener skips the listener in TO: then a tcp/udp probe succeeds
	// only if something else listens there (tests use it to check that
	// "nothing listens" reads as denied).
	NoListener bool
}

func (s ProbeSpec) withDefaults() (ProbeSpec, error) {
	if s.Proto == "" {
		s.Proto = "tcp"
	}
	switch s.Proto {
	case "tcp", "udp":
		if s.Port == 0 {
			s.Port = 80
		}
		if s.Port < 1 || s.Port > 65535 {
			return s, fmt.Errorf("port %d is out of range (1-65535)", s.Port)
		}
	case "icmp":
	default:
		return s, fmt.Errorf("protocol %q is not one of tcp, udp, icmp", s.Proto)
	}
	if s.Timeout <= 0 {
		s.Timeout = 2 * time.Second
	}
	return s, nil
}

func (s ProbeSpec) String() string {
	if s.Proto == "icmp" {
		return "icmp"
	}
	return fmt.Sprintf("%s/%d", s.Proto, s.Port)
}

// Endpoint is one end of a probe: a namespace of the lab and its address.
// Netns is empty for an address outside the lab (only valid as TO).
type Endpoint struct {
	Name  string
	Netns string
	IP    netip.Addr
}

// Resolve turns a workload, host or router name, "datastore", or an address
// into an endpoint.
func (l *Lab) Resolve(s string) (Endpoint, error) {
	t := l.State.Topology
	byName := map[string]Endpoint{}
	for _, w := range t.Workloads {
		if ws := l.State.Workloads[w.Name]; ws != nil {
			ip, _ := netip.ParseAddr(ws.IP)
			byName[w.Name] = Endpoint{w.Name, l.Netns(w.Name), ip}
		}
	}
	for _, m := range l.members() {
		p, _ := netip.ParsePrefix(m.address)
		byName[m.name] = Endpoint{m.name, l.Netns(m.name), p.Addr()}
	}
	for _, e := range t.ExternalHosts {
		p, _ := netip.ParsePrefix(e.Address)
		byName[e.Name] = Endpoint{e.Name, l.Netns(e.Name), p.Addr()}
	}
	if e, ok := byName[s]; ok {
		return e, nil
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		for _, e := range byName {
			if e.IP == ip {
				return e, nil
			}
		}
		return Endpoint{Name: s, IP: ip}, nil
	}
	return Endpoint{}, fmt.Errorf("%q is not a workload, host, router or address of lab %s", s, l.Name)
}

// Listener answers probes inside one namespace until closed.
type Listener struct {
	token []byte
	close func()
}

// Close stops the listener.
func (ln *Listener) Close() {
	if ln != nil && ln.close != nil {
		ln.close()
	}
}

func newToken() []byte {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return []byte("serval-lab " + hex.EncodeToString(b) + "\n")
}

// Listen starts a probe listener for spec in namespace ns: for tcp it
// writes a token to each connection, for udp it echoes each datagram; icmp
// needs none (the kernel answers). When the port is taken, whatever holds
// it answers instead and the listener is nil.
func Listen(ns string, spec ProbeSpec) (*Listener, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, err
	}
	if spec.Proto == "icmp" || spec.NoListener {
		return nil, nil
	}
	ln := &Listener{token: newToken()}
	addr := fmt.Sprintf(":%d", spec.Port)
	err = InNetns(ns, func() error {
		switch spec.Proto {
		case "tcp":
			tl, err := net.Listen("tcp4", addr)
			if err != nil {
				return err
			}
			ln.close = func() { tl.Close() }
			go func() {
				for {
					c, err := tl.Accept()
					if err != nil {
						return
					}
					_ = c.SetDeadline(time.Now().Add(2 * time.Second))
					_, _ = c.Write(ln.token)
					c.Close()
				}
			}()
		case "udp":
			pc, err := net.ListenPacket("udp4", addr)
			if err != nil {
				return err
			}
			ln.close = func() { pc.Close() }
			go func() {
				buf := make([]byte, 512)
				for {
					n, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = pc.WriteTo(buf[:n], from)
				}
			}()
		}
		return nil
	})
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("starting a %s listener in %s: %w", spec, ns, err)
	}
	return ln, nil
}

// Probe reports whether FROM reaches TO with spec: true is "allowed", false
// "denied" (refused, unreachable, or no answer within the timeout). An error
// means the probe could not be made at all.
func (l *Lab) Probe(ctx context.Context, from, to string, spec ProbeSpec) (bool, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return false, err
	}
	src, err := l.Resolve(from)
	if err != nil {
		return false, err
	}
	if src.Netns == "" {
		return false, fmt.Errorf("FROM %s is not in the lab: a probe must start from a workload, host or router", from)
	}
	dst, err := l.Resolve(to)
	if err != nil {
		return false, err
	}
	var ln *Listener
	if dst.Netns != "" {
		if ln, err = Listen(dst.Netns, spec); err != nil {
			return false, err
		}
		defer ln.Close()
	}
	return Send(ctx, src.Netns, dst.IP, spec, ln)
}

// Send makes one probe from namespace ns to ip. ln, when not nil, is the
// listener at the other end, whose token a tcp answer must carry (so that a
// stray listener does not count).
func Send(ctx context.Context, ns string, ip netip.Addr, spec ProbeSpec, ln *Listener) (bool, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var ok bool
	err = InNetns(ns, func() error {
		var err error
		switch spec.Proto {
		case "tcp":
			ok, err = sendTCP(ctx, ip, spec.Port, ln)
		case "udp":
			ok, err = sendUDP(deadline, ip, spec.Port)
		case "icmp":
			ok, err = sendICMP(deadline, ip)
		}
		return err
	})
	return ok, err
}

func sendTCP(ctx context.Context, ip netip.Addr, port int, ln *Listener) (bool, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp4", netip.AddrPortFrom(ip, uint16(port)).String())
	if err != nil {
		return false, nil // refused, unreachable, or timed out: all "denied"
	}
	defer c.Close()
	if ln == nil {
		return true, nil
	}
	deadline, _ := ctx.Deadline()
	_ = c.SetReadDeadline(deadline)
	buf := make([]byte, len(ln.token))
	n, _ := readFull(c, buf)
	return bytes.Equal(buf[:n], ln.token), nil
}

func readFull(c net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// sendUDP sends a nonce every 200 ms until the echo comes back. A refusal
// (ICMP port unreachable) is "denied" at once.
func sendUDP(deadline time.Time, ip netip.Addr, port int) (bool, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))))
	if err != nil {
		return false, nil // no route: denied
	}
	defer c.Close()
	nonce := newToken()
	buf := make([]byte, 512)
	for time.Now().Before(deadline) {
		if _, err := c.Write(nonce); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return false, nil
			}
		}
		wait := time.Now().Add(200 * time.Millisecond)
		if wait.After(deadline) {
			wait = deadline
		}
		_ = c.SetReadDeadline(wait)
		for {
			n, err := c.Read(buf)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					return false, nil
				}
				break
			}
			if bytes.Equal(buf[:n], nonce) {
				return true, nil
			}
		}
	}
	return false, nil
}

// sendICMP pings ip from a raw socket until an echo reply with our id and
// payload arrives. Raw sockets see every ICMP packet of the namespace, so
// replies to concurrent probes are told apart by id and payload.
func sendICMP(deadline time.Time, ip netip.Addr) (bool, error) {
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return false, fmt.Errorf("opening an ICMP socket: %w", err)
	}
	defer c.Close()
	nonce := newToken()
	idb := make([]byte, 2)
	_, _ = rand.Read(idb)
	id := int(idb[0])<<8 | int(idb[1])
	dst := &net.IPAddr{IP: ip.AsSlice()}
	buf := make([]byte, 1500)
	for seq := 1; time.Now().Before(deadline); seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: nonce}}
		wb, err := msg.Marshal(nil)
		if err != nil {
			return false, fmt.Errorf("building an echo request: %w", err)
		}
		if _, err := c.WriteTo(wb, dst); err != nil {
			// No route: unreachable is "denied"; keep trying until the
			// deadline in case a route appears.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		wait := time.Now().Add(300 * time.Millisecond)
		if wait.After(deadline) {
			wait = deadline
		}
		_ = c.SetReadDeadline(wait)
		for {
			n, peer, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && bytes.Equal(e.Data, nonce) {
				if pa, ok := peer.(*net.IPAddr); ok && pa.IP.Equal(dst.IP) {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// Matrix probes every ordered pair of distinct workloads (in topology
// order) and returns the names and result[i][j] = names[i] reaches
// names[j]. Probes run concurrently, a few at a time.
func (l *Lab) Matrix(ctx context.Context, spec ProbeSpec) ([]string, [][]bool, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	var names []string
	var eps []Endpoint
	for _, w := range l.State.Topology.Workloads {
		e, err := l.Resolve(w.Name)
		if err != nil || !e.IP.IsValid() {
			continue // not created (yet)
		}
		names = append(names, w.Name)
		eps = append(eps, e)
	}
	lns := make([]*Listener, len(eps))
	for i, e := range eps {
		if lns[i], err = Listen(e.Netns, spec); err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			return nil, nil, err
		}
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	res := make([][]bool, len(eps))
	for i := range res {
		res[i] = make([]bool, len(eps))
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 8)
	)
	for i := range eps {
		for j := range eps {
			if i == j {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				ok, err := Send(ctx, eps[i].Netns, eps[j].IP, spec, lns[j])
				mu.Lock()
				defer mu.Unlock()
				res[i][j] = ok
				if err != nil {
					errs = append(errs, fmt.Errorf("%s -> %s: %w", names[i], names[j], err))
				}
			}()
		}
	}
	wg.Wait()
	return names, res, errors.Join(errs...)
}

// isRoot says whether this process may build labs.
func isRoot() bool { return os.Geteuid() == 0 }
