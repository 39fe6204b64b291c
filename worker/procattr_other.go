//go:build !linux

package worker

import "syscall"

// handlerProcAttr runs a handler in a process group of its own (a timeout,
// a cancel or the guard stops its children too).
func handlerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
