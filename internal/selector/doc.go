// Package selector implements Calico's label selector language
// (projectcalico.org/v3): it parses a selector, evaluates it against the
// labels of an endpoint, network set or node, and prints it in a canonical
// form from which the names of dataplane sets are derived.
//
// # Grammar
//
// A selector is an expression over label names and quoted string values:
//
//	k == 'v'              label k is present and equal to v
//	k != 'v'              k is absent or not equal to v
//	k in {'a', 'b'}       k is present and one of the values (an empty set matches nothing)
//	k not in {'a', 'b'}   k is absent or none of the values
//	k contains 's'        k is present and contains s
//	k starts with 's'     k is present and begins with s
//	k ends with 's'       k is present and ends with s
//	has(k)                k is present, whatever its value
//	all()                 matches everything
//	global()              matches entities outside any namespace (see below)
//	!e   e && f   e || f  negation, conjunction, disjunction
//	( e )                 grouping
//
// "!" binds tightest and applies to one comparison or parenthesised group
// ("!a == 'b'" is "!(a == 'b')"); && binds tighter than ||. The empty
// selector, or one of blanks only, is all().
//
// The lexical rules are Calico's, including its quirks, so that a selector
// is accepted here exactly when Calico accepts it (save for a limit of
// MaxNesting levels of parentheses, which Calico lacks):
//
//   - Label names are 1 to 512 bytes of ASCII letters, digits and "_", ".",
//     "/", "-". This is looser than Kubernetes' rules for label keys, so
//     "app", "k8s-app" and "projectcalico.org/namespace" are all fine.
//   - Values are quoted with ' or ". There are no escape sequences: a value
//     runs to the next quote of the same kind and a backslash is an ordinary
//     character. A value holding ' is written in double quotes and one
//     holding " in single quotes; no value can hold both.
//   - Only spaces and tabs are whitespace. A newline is an error.
//   - The words "and", "or" and "not" are not operators; use &&, || and !.
//   - has(, all( and global( must be written without a blank before "(".
//   - Blanks inside the two-word operators are optional ("startswith",
//     "notin"), and a set may end with a comma: {'a', 'b',}.
//
// # global()
//
// Calico documents global() for use in a rule's namespaceSelector, where it
// widens the rule's selector from namespaced endpoints to non-namespaced
// resources such as GlobalNetworkSets and HostEndpoints. Calico implements
// that by rewriting global() in the namespace selector to
// !has(projectcalico.org/namespace), the label that every namespaced entity
// carries; its selector library on its own evaluates global() as true. This
// package gives global() that meaning directly: it matches exactly the
// entities without the NamespaceLabel label. String still prints global().
//
// The same Calico rewrite turns all() in a namespaceSelector into
// has(projectcalico.org/namespace) ("every namespace"). That depends on where
// the selector is used, so it is the caller's business: here all() always
// matches everything.
//
// # Canonical form
//
// Selector.String prints the canonical form in Calico's format: single
// blanks around operators, values double-quoted unless they contain a
// double quote, set values sorted and de-duplicated, and every && or ||
// group in parentheses, including the outermost one. Beyond Calico, nested
// groups of the same operator are flattened ("(a && b) && c" prints as
// "(a && b && c)") and double negations are removed, so that spellings
// that differ only in redundant parentheses print the same and String is
// idempotent. Selector.UniqueID hashes the canonical form as Calico does,
// so the two agree on the ID of a selector whenever they agree on its
// canonical form.
//
// # Use
//
//	sel, err := selector.Parse("role == 'db' && env in {'prod', 'staging'}")
//	if err != nil {
//		return err // a *ParseError with the byte position of the problem
//	}
//	if sel.Evaluate(endpoint.Labels) {
//		// ...
//	}
//
// Parsed selectors are immutable and safe for concurrent use; evaluation
// does not allocate.
package selector
