package localserver

import "syscall"

// sysProcAttr makes the kernel send SIGTERM to the server when the thread
// that started it dies, so a crashed or killed test binary or `jetfleet dev`
// does not leave a server behind. (Go's runtime threads live as long as the
// process unless a goroutine exits while locked to its thread.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
