package api

import (
	"strings"
	"testing"
)

func TestFelixConfigurationDataplaneFields(t *testing.T) {
	for _, c := range []struct {
		spec FelixConfigurationSpec
		bad  string // the field named in the error; "" for valid
	}{
		{FelixConfigurationSpec{InterfaceExclude: "kube-ipvs0, /^veth.*/"}, ""},
		{FelixConfigurationSpec{InterfaceExclude: "/[/"}, "spec.interfaceExclude"},
		{FelixConfigurationSpec{InterfaceExclude: "a-very-long-interface-name"}, "spec.interfaceExclude"},
		{FelixConfigurationSpec{LogPrefix: strings.Repeat("x", 128)}, "spec.logPrefix"},
	} {
		f := &FelixConfiguration{ObjectMeta: ObjectMeta{Name: "default"}, Spec: c.spec}
		errs := f.Validate()
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		got := strings.Join(msgs, "; ")
		if c.bad == "" && len(errs) > 0 {
			t.Errorf("%+v: unexpected errors: %v", c.spec, got)
		}
		if c.bad != "" && !strings.Contains(got, c.bad) {
			t.Errorf("%+v: want an error naming %s, got %q", c.spec, c.bad, got)
		}
	}
}
