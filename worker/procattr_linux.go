package worker

import "syscall"

// handlerProcAttr runs a handler in a process group of its own (a timeout,
// a cancel or the guard stops its children too) and has the kernel kill it
// if the worker dies before the guard lists it.
func handlerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
