// Many goroutines write, read back and check files in a virtual and a local directory
// while the runtime preempts them with signals (SIGURG) and a 100 Hz SIGALRM timer runs.
//
//	signal_probe_go GOROUTINES COUNT VIRTUAL_DIR LOCAL_DIR
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

func body(i int) []byte {
	n := 1000 + (i*37)%5000
	b := make([]byte, n)
	for k := range b {
		b[k] = byte('a' + (i*7+k)%26)
	}
	return b
}

func spin() int {
	x := 0
	for k := 0; k < 200000; k++ {
		x += k ^ (x >> 3)
	}
	return x
}

func main() {
	workers, _ := strconv.Atoi(os.Args[1])
	count, _ := strconv.Atoi(os.Args[2])
	vdir, ldir := os.Args[3], os.Args[4]

	held, err := os.OpenFile(ldir+"/held", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil || func() error { _, e := held.Write([]byte("held")); return e }() != nil {
		fmt.Println("cannot make the held file:", err)
		os.Exit(2)
	}
	ticks := make(chan os.Signal, 100)
	signal.Notify(ticks, syscall.SIGALRM)
	// struct itimerval: interval and value, 10 ms each (100 Hz)
	it := [2]syscall.Timeval{{Usec: 10000}, {Usec: 10000}}
	syscall.Syscall(syscall.SYS_SETITIMER, 0, uintptr(unsafe.Pointer(&it)), 0)

	var failures int64
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		if atomic.AddInt64(&failures, 1) <= 20 {
			mu.Lock()
			fmt.Printf("FAIL "+format+"\n", args...)
			mu.Unlock()
		}
	}
	one := func(dir string, i int) {
		path := fmt.Sprintf("%s/f%d", dir, i)
		want := body(i)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			fail("open %s: %v", path, err)
			return
		}
		spin()
		if n, err := f.Write(want); err != nil || n != len(want) {
			fail("write %s: %d %v", path, n, err)
		}
		if st, err := f.Stat(); err != nil || st.Size() != int64(len(want)) {
			fail("stat %s: %v %v", path, st, err)
		}
		if err := f.Close(); err != nil {
			fail("close %s: %v", path, err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			fail("read back %s: %d bytes, %v", path, len(got), err)
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < count; i += workers {
				one(vdir, i)
				if i%4 == 0 {
					one(ldir, i)
				}
			}
		}(w)
	}
	wg.Wait()
	signal.Stop(ticks)
	buf := make([]byte, 64)
	if n, err := held.ReadAt(buf, 0); n != 4 || string(buf[:4]) != "held" {
		fail("held local file changed: %q %v", buf[:n], err)
	}
	if failures > 0 {
		os.Exit(1)
	}
	fmt.Printf("ok %d %d\n", count, len(ticks))
}
