// Package pause is what serval-pause does as the first process of a pod
// sandbox: hold the pod's namespaces open by staying alive, reap the
// children that end up its own, and exit 0 when told to stop.
//
// The container runtime starts the sandbox image's process as PID 1 of the
// sandbox's PID namespace, keeps it running for the pod's lifetime and
// stops it with SIGTERM (SIGKILL after a grace period). When the pod
// shares its process namespace (shareProcessNamespace), its containers'
// processes live in that namespace too, and every orphan among them
// becomes this process's child: unreaped, they would stay zombies.
// The kernel delivers to PID 1 only the signals it has a handler for, so
// the handlers are what makes it stoppable at all.
//
// Use, from a main:
//
//	os.Exit(pause.Run(os.Stderr))
package pause
