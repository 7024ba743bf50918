package main

import (
	"os/exec"
	"syscall"
	"time"
)

// groupProcess runs cmd in its own process group, stopped as a group
// (SIGTERM, then SIGKILL after 5 s) when its context ends, and sent
// SIGTERM by the kernel if dev dies without stopping it.
func groupProcess(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
}
