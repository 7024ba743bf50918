//go:build !linux

package main

import (
	"os/exec"
	"time"
)

// groupProcess: outside Linux, ffmpeg is stopped alone when its context
// ends (it starts no children of its own here).
func groupProcess(cmd *exec.Cmd) { cmd.WaitDelay = 5 * time.Second }
