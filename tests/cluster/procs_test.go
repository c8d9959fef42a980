package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one child: its output goes to <run>/logs/<name>.log (kept for the failure report).
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

func startProcess(name, logDir string, cmd *exec.Cmd) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group (a signal to the test never reaches it first); killed when the test
	// process dies without its cleanup (a `go test -timeout` panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// alive is an error naming the process when it has exited.
func (p *process) alive() error {
	if p.exited() {
		return fmt.Errorf("%s exited (%v); log tail:\n%s", p.name, p.err, p.tail(40))
	}
	return nil
}

// stop sends SIGTERM, waits up to 15 s, then SIGKILL, and always waits for the exit.
func (p *process) stop() {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *process) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stack is the processes started so far, stopped in reverse order one at a time.
type stack struct {
	mu    sync.Mutex
	procs []*process
}

func (s *stack) add(p *process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs = append(s.procs, p)
}

func (s *stack) remove(p *process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, q := range s.procs {
		if q == p {
			s.procs = append(s.procs[:i], s.procs[i+1:]...)
			return
		}
	}
}

// alive is the first exited process, as an error.
func (s *stack) alive() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		if err := p.alive(); err != nil {
			return err
		}
	}
	return nil
}

func (s *stack) stopAll() {
	s.mu.Lock()
	procs := append([]*process(nil), s.procs...)
	s.procs = nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
}

// waitFor polls cond every 50 ms until it returns nil, a started process exits, or the time is
// up; the error then says which (the condition's last error included).
func (s *stack) waitFor(what string, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if err := s.alive(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if last = cond(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v: %w", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	portsMu sync.Mutex
	used    = map[int]bool{}
)

// freePort is a TCP port on 127.0.0.1 below 32768 (outside the ephemeral range, so nothing the
// kernel hands out meanwhile takes it) that no earlier call returned.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		if used[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		used[port] = true
		return port, nil
	}
	return 0, errors.New("no free port in 20000-31999")
}

// mountsUnder lists mount points at or below dir (from /proc/self/mountinfo), deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		point := unescapeMount(fields[4])
		if point == dir || strings.HasPrefix(point, dir+"/") {
			out = append(out, point)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// mountFSType is the file-system type mounted at point ("" when nothing is).
func mountFSType(point string) string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	fstype := ""
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		fields := strings.Fields(pre)
		if len(fields) >= 5 && unescapeMount(fields[4]) == point {
			fstype = strings.Fields(post)[0] // the last (top) mount wins
		}
	}
	return fstype
}

func unescapeMount(s string) string {
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
