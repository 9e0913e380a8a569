package service

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/kardianos/service"
)

// stopTimeout bounds how long a stop request of the service manager waits
// for the daemon to finish, and how long the daemon then waits for the
// service manager to be told.
const stopTimeout = 20 * time.Second

// Interactive reports whether idmd was started from a terminal or a script
// rather than by the OS service manager.
func Interactive() bool { return service.Interactive() }

// StopContext returns a context that is cancelled when the daemon must
// stop, and a function to call once it has stopped. Started from a
// terminal or a script, that is at SIGINT or SIGTERM; started by the
// service manager, at its stop request, which is answered only once the
// returned function has been called (or after 20 seconds). Call the
// function exactly once, whether or not the context was cancelled.
func StopContext() (context.Context, func()) {
	if service.Interactive() {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		return ctx, stop
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &program{cancel: cancel, done: make(chan struct{})}
	svc, err := service.New(p, &service.Config{
		Name: Name,
		// Unix service managers stop a daemon with SIGTERM; the library's
		// own wait ignores a daemon that ends by itself.
		Option: service.KeyValue{"RunWait": p.wait},
	})
	if err != nil {
		cancel()
		return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		if err := svc.Run(); err != nil {
			// Not a service after all (Windows says so): stop on signals.
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sig)
			select {
			case <-sig:
				cancel()
			case <-p.done:
			}
		}
	}()
	return ctx, func() {
		p.finish()
		select {
		case <-ran:
		case <-time.After(stopTimeout):
		}
		cancel()
	}
}

// program is the daemon as the service library sees it: Start has nothing
// to do, since the daemon is already running when the library is asked to
// serve, and Stop cancels the daemon's context and waits for it to end.
type program struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (p *program) finish() { p.once.Do(func() { close(p.done) }) }

func (p *program) Start(service.Service) error { return nil }

func (p *program) Stop(service.Service) error {
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
	}
	return nil
}

// wait blocks until the service manager asks the daemon to stop (SIGTERM,
// or SIGINT) or the daemon ends by itself.
func (p *program) wait() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-sig:
	case <-p.done:
	}
}
