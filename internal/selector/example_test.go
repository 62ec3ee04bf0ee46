package selector_test

import (
	"fmt"

	"github.com/servalnet/serval/internal/selector"
)

func ExampleParse() {
	sel, err := selector.Parse(`role == 'db' && env in {'staging', 'prod'} && !has(deprecated)`)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sel.String())
	fmt.Println(sel.Evaluate(map[string]string{"role": "db", "env": "prod"}))
	fmt.Println(sel.Evaluate(map[string]string{"role": "db", "env": "prod", "deprecated": "true"}))

	_, err = selector.Parse(`role == 'db' &&`)
	fmt.Println(err)
	// Output:
	// (role == "db" && env in {"prod", "staging"} && !has(deprecated))
	// true
	// false
	// invalid selector "role == 'db' &&": at position 15: expected expression, found end of selector
}
