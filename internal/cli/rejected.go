package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/servalnet/serval/internal/nodestatus"
)

// printRejected lists the objects the agent read and could not accept,
// each with what it did instead and why.
func printRejected(w io.Writer, rs []nodestatus.Rejected) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%d object(s) in the datastore failed validation:\n", len(rs))
	for _, r := range rs {
		name := r.Name
		if r.Namespace != "" {
			name = r.Namespace + "/" + r.Name
		}
		fmt.Fprintf(w, "  %s %q (%s):\n", r.Kind, name, r.Action)
		for _, l := range strings.Split(r.Reason, "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}
