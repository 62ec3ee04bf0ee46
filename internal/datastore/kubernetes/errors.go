package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
)

// errCRDMissing says that the API server does not serve a kind at all.
var errCRDMissing = errors.New("the API server does not serve this kind (is its CustomResourceDefinition installed?)")

// mapError turns an error of a request into one wrapping the datastore's
// errors. parent is the caller's context: its own cancellation or
// deadline is returned as it is; the request timeout expiring, a
// connection that fails and the API server saying it cannot answer now
// are ErrUnavailable. key, when not zero, is the object the request was
// about, to tell "no such object" from "no such resource type".
func (s *Store) mapError(parent context.Context, key api.Key, err error) error {
	if err == nil {
		return nil
	}
	if perr := parent.Err(); perr != nil {
		return perr
	}
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		// No answer from the API server at all: refused, reset, timed
		// out, TLS or proxy failure.
		return fmt.Errorf("%w: the Kubernetes API server at %s did not answer: %v", datastore.ErrUnavailable, s.host, err)
	}
	status := st.Status()
	msg := status.Message
	switch {
	case apierrors.IsNotFound(err):
		d := status.Details
		switch {
		case !fromServer(status):
			// A 404 without a Status: the server has no such path.
			return fmt.Errorf("%w: %s", errCRDMissing, msg)
		case d != nil && d.Kind == "namespaces":
			return fmt.Errorf("namespace %q does not exist: %s", d.Name, msg)
		case key.Name != "" && d != nil && d.Name == key.Name:
			return fmt.Errorf("%w: %s", datastore.ErrNotFound, msg)
		default:
			return fmt.Errorf("%w: %s", errCRDMissing, msg)
		}
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%w: %s", datastore.ErrAlreadyExists, msg)
	case apierrors.IsConflict(err):
		return fmt.Errorf("%w: %s", datastore.ErrConflict, msg)
	case isExpired(err):
		return fmt.Errorf("%w: %s", datastore.ErrCompacted, msg)
	case apierrors.IsServiceUnavailable(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsTooManyRequests(err), status.Code == http.StatusBadGateway:
		return fmt.Errorf("%w: the Kubernetes API server at %s: %s", datastore.ErrUnavailable, s.host, msg)
	case apierrors.IsInternalError(err) || status.Code >= 500:
		// An apiserver that lost its etcd answers 500 "etcdserver:
		// request timed out" and the like.
		return fmt.Errorf("%w: the Kubernetes API server at %s: %s", datastore.ErrUnavailable, s.host, msg)
	}
	return fmt.Errorf("the Kubernetes API server at %s: %w", s.host, err)
}

// isExpired: the resourceVersion or continue token asked for is older
// than the server's history.
func isExpired(err error) bool {
	return apierrors.IsGone(err) || apierrors.IsResourceExpired(err)
}

// statusError turns the Status of a watch ERROR event into an error.
func statusError(st *metav1.Status) error {
	return &apierrors.StatusError{ErrStatus: *st}
}

// fromServer tells a Status the API server sent from one client-go made
// up for an answer without one (a plain "404 page not found" of a path
// the server does not serve).
func fromServer(st metav1.Status) bool {
	if st.Details == nil {
		return true
	}
	for _, c := range st.Details.Causes {
		if c.Type == metav1.CauseTypeUnexpectedServerResponse {
			return false
		}
	}
	return true
}
