// Package cli implements servalctl's commands on top of the api and
// datastore packages. cmd/servalctl only wires a process to Main.
//
// Every command that writes follows the same discipline: read every
// manifest, decode strictly, fill in defaults, validate, and check what the
// datastore holds, all before the first write; one bad document means
// nothing is written. Updates are conditional on the resourceVersion that was
// read, so a concurrent change is never silently overwritten.
//
// Exit status: 0 success, 1 failure (or "no match" for selector match), 2 a
// bad selector.
//
// Example, as a test would run it:
//
//	var out, errOut bytes.Buffer
//	code := cli.Main(ctx, []string{"selector", "match", "role == 'db'", "role=db"},
//		cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
//	// code == 0, out.String() == "match\n"
package cli
