package service

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite packaging/idmd.service from Unit")

// packagedUnit is the unit the Debian package ships.
const packagedUnit = "../../packaging/idmd.service"

// unitSettings parses a unit file into "Section.Key" -> values, in order.
func unitSettings(t *testing.T, unit string) map[string][]string {
	t.Helper()
	settings := map[string][]string{}
	section := ""
	for n, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("line %d is neither a section nor a setting: %q", n+1, line)
			}
			settings[section+"."+k] = append(settings[section+"."+k], v)
		}
	}
	return settings
}

func mustResolve(t *testing.T, c Config) Config {
	t.Helper()
	c, err := c.resolve()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The package's unit is what "idmd install" writes for /usr/bin/idmd with
// the defaults, byte for byte.
func TestUnit_System_IsThePackagedUnit(t *testing.T) {
	unit := Unit(mustResolve(t, Config{Executable: "/usr/bin/idmd"}))
	if *update {
		if err := os.WriteFile(packagedUnit, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(packagedUnit)
	if err != nil {
		t.Fatal(err)
	}
	if unit != string(want) {
		t.Errorf("Unit differs from %s (go test ./daemon/service -run %s -update rewrites it):\n%s", packagedUnit, t.Name(), unit)
	}
}

func TestUnit_System(t *testing.T) {
	s := unitSettings(t, Unit(mustResolve(t, Config{Executable: "/usr/bin/idmd"})))
	want := map[string][]string{
		"Unit.After":                      {"network-online.target"},
		"Service.ExecStart":               {"/usr/bin/idmd run --socket /run/idmd/idmd.sock --state-dir /var/lib/idmd --system --group idm"},
		"Service.EnvironmentFile":         {"-/etc/default/idmd"},
		"Service.User":                    {"idm"},
		"Service.Group":                   {"idm"},
		"Service.RuntimeDirectory":        {"idmd"},
		"Service.StateDirectory":          {"idmd"},
		"Service.Restart":                 {"on-failure"},
		"Service.NoNewPrivileges":         {"yes"},
		"Service.CapabilityBoundingSet":   {""},
		"Service.ProtectSystem":           {"strict"},
		"Service.ReadWritePaths":          {"/var/lib/idmd"},
		"Service.ProtectHome":             {"read-only"},
		"Service.PrivateTmp":              {"yes"},
		"Service.ReadOnlyPaths":           {"/tmp /var/tmp"},
		"Service.PrivateDevices":          {"yes"},
		"Service.ProtectKernelTunables":   {"yes"},
		"Service.ProtectKernelModules":    {"yes"},
		"Service.ProtectControlGroups":    {"yes"},
		"Service.RestrictAddressFamilies": {"AF_UNIX AF_INET AF_INET6"},
		"Service.RestrictNamespaces":      {"yes"},
		"Service.SystemCallFilter":        {"@system-service"},
		"Install.WantedBy":                {"multi-user.target"},
	}
	for k, v := range want {
		if !slices.Equal(s[k], v) {
			t.Errorf("%s = %q, want %q", k, s[k], v)
		}
	}
}

func TestUnit_User(t *testing.T) {
	s := unitSettings(t, Unit(mustResolve(t, Config{
		User: true, Executable: "/home/ann/go/bin/idmd",
		Socket: "/run/user/1000/idmd/idmd.sock", StateDir: "/home/ann/.local/state/idmd",
	})))
	want := map[string][]string{
		"Service.ExecStart":       {"/home/ann/go/bin/idmd run --socket /run/user/1000/idmd/idmd.sock --state-dir /home/ann/.local/state/idmd"},
		"Service.Restart":         {"on-failure"},
		"Service.NoNewPrivileges": {"yes"},
		// A user manager never reaches multi-user.target.
		"Install.WantedBy": {"default.target"},
	}
	for k, v := range want {
		if !slices.Equal(s[k], v) {
			t.Errorf("%s = %q, want %q", k, s[k], v)
		}
	}
	for _, k := range []string{"Service.User", "Service.Group", "Service.ProtectSystem", "Service.StateDirectory", "Service.EnvironmentFile"} {
		if v, ok := s[k]; ok {
			t.Errorf("a user unit has %s=%q", k, v)
		}
	}
}

// What install is given is baked into the unit, and every path the daemon
// writes is writable despite ProtectSystem=strict.
func TestUnit_System_Baked(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want map[string][]string
	}{
		{
			name: "max-active and limit",
			cfg:  Config{MaxActive: 5, Limit: "20M"},
			want: map[string][]string{
				"Service.ExecStart": {"/usr/bin/idmd run --socket /run/idmd/idmd.sock --state-dir /var/lib/idmd --system --group idm --max-active 5 --limit 20M"},
			},
		},
		{
			name: "download directories may be missing",
			cfg:  Config{DownloadDirs: []string{"/srv/downloads", "/data/in coming/"}},
			want: map[string][]string{
				"Service.ReadWritePaths": {"/var/lib/idmd", "-/srv/downloads", `"-/data/in coming"`},
			},
		},
		{
			name: "state and socket under /var/lib and /run",
			cfg:  Config{StateDir: "/var/lib/idm-state", Socket: "/run/idm-sock/ctl.sock"},
			want: map[string][]string{
				"Service.StateDirectory":   {"idmd idm-state"},
				"Service.RuntimeDirectory": {"idmd idm-sock"},
				"Service.ReadWritePaths":   {"/var/lib/idm-state"},
			},
		},
		{
			name: "state and socket elsewhere",
			cfg:  Config{StateDir: "/srv/idmd", Socket: "/srv/sockets/idmd.sock"},
			want: map[string][]string{
				"Service.StateDirectory":   {"idmd"},
				"Service.RuntimeDirectory": {"idmd"},
				"Service.ReadWritePaths":   {"/srv/idmd", "/srv/sockets"},
			},
		},
		{
			name: "socket in the state directory",
			cfg:  Config{StateDir: "/srv/idmd", Socket: "/srv/idmd/ctl.sock"},
			want: map[string][]string{
				"Service.ReadWritePaths": {"/srv/idmd"},
			},
		},
		{
			name: "systemd's special characters",
			cfg:  Config{Executable: "/opt/idm 2/idmd", StateDir: "/srv/100%/$HOME"},
			want: map[string][]string{
				"Service.ExecStart":      {`"/opt/idm 2/idmd" run --socket /run/idmd/idmd.sock --state-dir /srv/100%%/$$HOME --system --group idm`},
				"Service.ReadWritePaths": {"/srv/100%%/$HOME"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.Executable == "" {
				tt.cfg.Executable = "/usr/bin/idmd"
			}
			s := unitSettings(t, Unit(mustResolve(t, tt.cfg)))
			for k, v := range tt.want {
				if !slices.Equal(s[k], v) {
					t.Errorf("%s = %q, want %q", k, s[k], v)
				}
			}
		})
	}
}

func TestExecWord(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/usr/bin/idmd", "/usr/bin/idmd"},
		{"", `""`},
		{"a b", `"a b"`},
		{`say "hi"`, `"say \"hi\""`},
		{`back\slash`, `"back\\slash"`},
		{"50%", "50%%"},
		{"$HOME", "$$HOME"},
		{";", `";"`},
	}
	for _, tt := range tests {
		if got := execWord(tt.in); got != tt.want {
			t.Errorf("execWord(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestConfig_Resolve_Rejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"relative socket", Config{Socket: "idmd.sock"}},
		{"relative state directory", Config{StateDir: "state"}},
		{"relative download directory", Config{DownloadDirs: []string{"downloads"}}},
		{"download directories of a user service", Config{User: true, DownloadDirs: []string{"/srv/dl"}}},
		{"newline in a path", Config{StateDir: "/srv/a\nExecStartPre=/bin/rm"}},
		{"negative max-active", Config{MaxActive: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Executable = "/usr/bin/idmd"
			if _, err := tt.cfg.resolve(); err == nil {
				t.Errorf("resolve accepted %+v", tt.cfg)
			}
		})
	}
}

func TestConfig_Resolve_UserDefaults(t *testing.T) {
	t.Setenv("IDMD_SOCKET", "")
	t.Setenv("IDMD_STATE_DIR", "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	t.Setenv("XDG_STATE_HOME", "/home/ann/.local/state")
	if os.Geteuid() == 0 {
		t.Skip("as root the defaults are the system's")
	}
	c := mustResolve(t, Config{User: true, Executable: "/usr/bin/idmd"})
	if c.Socket != filepath.Join("/run/user/1000", "idmd", "idmd.sock") || c.StateDir != "/home/ann/.local/state/idmd" {
		t.Errorf("user defaults: socket %s, state %s", c.Socket, c.StateDir)
	}
}

// The download directories and the RPC's flags are baked into the
// service's command line.
func TestConfig_Arguments_RPC(t *testing.T) {
	c, err := Config{Executable: "/usr/bin/idmd", DownloadDirs: []string{"/srv/dl/"}, RPCListen: "0.0.0.0:6800", RPCListenAny: true, RPCSecretFile: "/etc/idmd/secret"}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"run", "--socket", "/run/idmd/idmd.sock", "--state-dir", "/var/lib/idmd", "--system", "--group", "idm",
		"--download-dir", "/srv/dl", "--rpc-listen", "0.0.0.0:6800", "--rpc-listen-any", "--rpc-secret-file", "/etc/idmd/secret"}
	if got := c.Arguments(); !slices.Equal(got, want) {
		t.Errorf("arguments %q\nwant %q", got, want)
	}
	if _, err := (Config{Executable: "/usr/bin/idmd", RPCSecretFile: "secret"}).resolve(); err == nil {
		t.Error("a relative secret file was taken")
	}
	if _, err := (Config{Executable: "/usr/bin/idmd", RPCListen: "127.0.0.1:6800\nExecStartPre=/bin/sh"}).resolve(); err == nil {
		t.Error("a line break went into the unit")
	}
}
