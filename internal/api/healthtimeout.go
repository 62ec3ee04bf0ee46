package api

import "github.com/servalnet/serval/internal/nodestatus"

// validateHealthTimeoutOverride checks one of FelixConfiguration's
// healthTimeoutOverrides: serval-node enforces it on the worker it names,
// so a name that is no worker of serval-node's is refused rather than
// ignored, and so is a timeout of zero (a worker that is always stuck).
func validateHealthTimeoutOverride(errs *ErrorList, p Path, o HealthTimeoutOverride) {
	switch _, ok := nodestatus.WorkerName(o.Name); {
	case o.Name == "":
		errs.Required(p.Child("name"))
	case !ok:
		errs.Invalid(p.Child("name"), o.Name, "is not one of serval-node's workers ("+nodestatus.WorkerNames()+")")
	}
	validateDuration(errs, p.Child("timeout"), &o.Timeout)
	if !o.Timeout.bad && o.Timeout.Duration == 0 {
		errs.Invalid(p.Child("timeout"), o.Timeout.String(), "must be positive")
	}
}
