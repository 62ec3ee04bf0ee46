// Package labtest holds what the lab-based test packages under test/
// (e2e, reliability, bgp) share, so that each states only what is its own:
// a TestMain body that builds the binaries once (through testbin), the
// root check, lab options and a logger that write into the test's log,
// and bringing a lab up that is removed when the test ends.
//
// Use, from a test package:
//
//	func TestMain(m *testing.M) {
//		os.Exit(labtest.Main(m, "bgp", cmds, func(dir, root string) error {
//			binDir, repo = dir, root
//			return nil
//		}))
//	}
//
//	func TestX(t *testing.T) {
//		labtest.NeedRoot(t)
//		l := labtest.Up(t, name, topo, labtest.Options(t, binDir), 90*time.Second)
//		...
//	}
package labtest
