package admission

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// Filter is a datastore.SyncerCallbacks that validates each object before
// passing it on to next. Like any SyncerCallbacks it is called from one
// goroutine only.
type Filter struct {
	next     datastore.SyncerCallbacks
	reg      *Registry
	log      *slog.Logger
	reporter Reporter
}

// Reporter is told of each rejection, with the object as it was read
// (before it was replaced), and of each object that no longer is
// rejected (valid again, or deleted). It is called from the filter's
// goroutine and must not block: package kubeevents records a Kubernetes
// Event on the rejected object.
type Reporter interface {
	Reject(obj api.Resource, rej Rejected)
	Clear(key api.Key)
}

// ReportTo makes the filter tell r of rejections; call it before the
// filter is used.
func (f *Filter) ReportTo(r Reporter) { f.reporter = r }

func (f *Filter) clear(k api.Key) {
	f.reg.clear(k)
	if f.reporter != nil {
		f.reporter.Clear(k)
	}
}

var _ datastore.SyncerCallbacks = (*Filter)(nil)

// NewFilter returns a filter in front of next that records rejections in
// reg. A nil log discards.
func NewFilter(next datastore.SyncerCallbacks, reg *Registry, log *slog.Logger) *Filter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Filter{next: next, reg: reg, log: log.With("component", "admission")}
}

// OnStatus implements datastore.SyncerCallbacks.
func (f *Filter) OnStatus(s datastore.Status) { f.next.OnStatus(s) }

// OnUpdates implements datastore.SyncerCallbacks: each update is replaced
// by what may be applied of it (see the package comment). The syncer hands
// the batch over, so it is rewritten in place.
func (f *Filter) OnUpdates(us []datastore.Update) {
	for i := range us {
		us[i] = f.Admit(us[i])
	}
	f.next.OnUpdates(us)
}

// Admit returns what may be applied of u: u itself when it is valid (or a
// deletion), else its fail-closed replacement or its deletion.
func (f *Filter) Admit(u datastore.Update) datastore.Update {
	if u.Type == datastore.Deleted || u.Object == nil {
		f.clear(u.Key)
		return u
	}
	reason := check(u)
	if reason == "" {
		f.clear(u.Key)
		return u
	}
	orig := u.Object
	rej := Rejected{Kind: u.Key.Kind, Namespace: u.Key.Namespace, Name: u.Key.Name, Reason: reason}
	if sub := failClosed(u.Key, u.Object); sub != nil {
		rej.Action = "failed closed"
		u.Object = sub
	} else {
		rej.Action = "skipped"
		u = datastore.Update{Type: datastore.Deleted, Key: u.Key, Object: u.Object, Revision: u.Revision}
	}
	f.log.Error("rejected an invalid object read from the datastore", "resource", u.Key.String(), "action", rej.Action, "reason", reason)
	f.reg.set(u.Key, rej)
	if f.reporter != nil {
		f.reporter.Reject(orig, rej)
	}
	return u
}

// check applies defaults and validates u's object as servalctl would, and
// checks that it is stored under its own name. It returns "" or why not.
func check(u datastore.Update) (reason string) {
	defer func() {
		// Validation must not panic on any input; if it ever does, the
		// object is rejected rather than the agent stopped.
		if p := recover(); p != nil {
			reason = fmt.Sprintf("validation failed: %v", p)
		}
	}()
	obj := u.Object
	if k := api.KeyOf(obj); k != u.Key {
		return fmt.Sprintf("stored as %s but names itself %s", u.Key, k)
	}
	obj.SetDefaults()
	err := api.Validate(obj)
	if err == nil {
		return ""
	}
	var ve *api.ValidationError
	if errors.As(err, &ve) {
		lines := make([]string, len(ve.Errors))
		for i, fe := range ve.Errors {
			lines[i] = fe.Error()
		}
		return strings.Join(lines, "\n")
	}
	return err.Error()
}
