//go:build !linux

package redistest

import "os/exec"

// startProcess starts cmd. Only Linux can tie a child's life to its
// parent's; elsewhere the Cleanups alone stop the servers.
func startProcess(cmd *exec.Cmd) error { return cmd.Start() }
