// Package nginxtest runs a real nginx on loopback for the tests that
// download from HTTP mirrors: the server most mirrors run, with its own
// ranges, validators and redirects, rather than one written for the test.
// make test installs nginx when it is missing; a test run without it
// fails and says how to get it.
package nginxtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running nginx.
type Server struct {
	// URL is http://127.0.0.1:PORT, with no slash at the end.
	URL string
	// Root is the directory it serves at /.
	Root string
}

// Binary returns the path of nginx, or an error saying how to install it.
func Binary() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("nginx is not installed: make test installs it, or run apt-get install nginx-light")
}

// Start runs nginx serving root at / on a free loopback port, with extra
// (server-block directives, such as locations) added to its server block,
// and stops it when the test ends.
func Start(t testing.TB, root, extra string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	// A port picked and released can be taken before nginx binds it:
	// try a few.
	var lastErr error
	for range 5 {
		s, err := start(t, bin, root, extra)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("nginx would not start: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, root, extra string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	// As root, nginx's workers would run as nobody and could not read the
	// test's private directories; they run as the test's user instead.
	userLine := ""
	if os.Geteuid() == 0 {
		u, err := user.Current()
		if err != nil {
			return nil, err
		}
		userLine = "user " + u.Username + ";"
	}
	text := fmt.Sprintf(`%s
daemon off;
master_process off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	types { application/octet-stream bin; }
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:%[3]d;
		root %[4]s;
		%[5]s
	}
}
`, userLine, dir, port, root, extra)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-c", conf, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	// One process, no master and workers, writing only to its own log:
	// killing it leaves nothing behind that holds the test's output.
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("nginx exited: %v: %s", err, strings.TrimSpace(string(log)))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("nginx did not listen on %s within 10 s", url)
		}
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return &Server{URL: url, Root: root}, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
