package lab

import (
	"fmt"

	"github.com/spf13/cobra"
)

// Commands that break a running lab on purpose, for fault tests and for
// people who want to watch what happens.

func datastoreCmd(c *cliOpts) *cobra.Command {
	return processCmd(c, "datastore stop|kill|start MEMBER",
		"stop a datastore member (SIGTERM), kill it (SIGKILL), or start it again; members are listed by status",
		"datastore member", (*Lab).DatastoreStop, (*Lab).DatastoreStart)
}

func linkCmd(c *cliOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "link down|up HOST",
		Short: "take a host's fabric link down (its cable pulled) or up again",
		Args:  cobra.ExactArgs(2),
		RunE: c.onLab(1, func(cmd *cobra.Command, l *Lab, args []string) error {
			if args[0] != "down" && args[0] != "up" {
				return &ExitError{Code: 2, Err: fmt.Errorf("%q: want down or up", args[0])}
			}
			if err := l.HostLink(cmd.Context(), args[1], args[0] == "up"); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "fabric link of %s is %s\n", args[1], args[0])
			return nil
		}),
	}
}
