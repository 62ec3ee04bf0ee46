package cni

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/servalnet/serval/internal/datastore"
)

// Serval's own CNI error codes (the spec leaves 100 and up to plugins).
// Spec codes used as well: 4 invalid environment variables (CNI_ARGS),
// 7 invalid network configuration, 11 try again later (the datastore does
// not answer), 50 plugin not available (STATUS), 999 anything else.
const (
	// ErrIPAM: addresses could not be allocated (pools exhausted, no pool
	// for this node, address in use...). The message says which.
	ErrIPAM uint = 100
	// ErrDataplane: the veth, its addresses, routes or sysctls could not
	// be set up.
	ErrDataplane uint = 101
	// ErrDatastore: the datastore answered but refused a request.
	ErrDatastore uint = 102
	// ErrCheckFailed: CHECK found the attachment not as ADD made it.
	ErrCheckFailed uint = 103
)

// cniError turns err into the *types.Error the runtime receives. what
// says what was being done ("allocating addresses"); fallback is the code
// when nothing more specific is known. An error that already is a
// *types.Error (from a delegated plugin) keeps its code.
func cniError(what string, fallback uint, err error) *types.Error {
	var te *types.Error
	var ce *ConfigError
	switch {
	case errors.As(err, &te):
		return &types.Error{Code: te.Code, Msg: what + ": " + te.Msg, Details: te.Details}
	case errors.As(err, &ce):
		return types.NewError(types.ErrInvalidNetworkConfig, ce.Error(), "")
	case errors.Is(err, datastore.ErrUnavailable):
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("%s: %v", what, err), "the datastore did not answer; try again later")
	}
	return types.NewError(fallback, fmt.Sprintf("%s: %v", what, err), "")
}

// undoStack records how to reverse each step of ADD, so that a failure
// part-way leaves nothing behind.
type undoStack struct {
	steps []undoStep
}

type undoStep struct {
	what string
	fn   func() error
}

func (u *undoStack) push(what string, fn func() error) { u.steps = append(u.steps, undoStep{what, fn}) }

// run undoes every step, newest first, and returns what could not be
// undone (nil if everything was).
func (u *undoStack) run() error {
	var errs []error
	for i := len(u.steps) - 1; i >= 0; i-- {
		if err := u.steps[i].fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.steps[i].what, err))
		}
	}
	u.steps = nil
	return errors.Join(errs...)
}

// failAdd undoes what ADD did and returns the error for the runtime, with
// anything that could not be undone appended to the message.
func failAdd(u *undoStack, e *types.Error) *types.Error {
	if uerr := u.run(); uerr != nil {
		e.Msg += fmt.Sprintf(" (and undoing failed: %v)", uerr)
	}
	return e
}
