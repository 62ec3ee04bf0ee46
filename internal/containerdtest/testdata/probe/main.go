// Command probe is the program of the test images of containerdtest's
// users: run in a container, it says who it runs as and with what
// arguments, and describes each argument that is an absolute path as the
// container sees it, one line each:
//
//	probe uid=0 gid=0 args=["/tmp" "/agnhost-2"]
//	/tmp dtrwxrwxrwx
//	/agnhost-2 Lrwxrwxrwx -> agnhost
//
// "exit N" as its arguments makes it exit with status N.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	args := os.Args[1:]
	fmt.Printf("probe uid=%d gid=%d args=%q\n", os.Getuid(), os.Getgid(), args)
	if len(args) == 2 && args[0] == "exit" {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			fmt.Println(err)
			os.Exit(100)
		}
		os.Exit(n)
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "/") {
			continue
		}
		fi, err := os.Lstat(a)
		if err != nil {
			fmt.Printf("%s %v\n", a, err)
			continue
		}
		line := a + " " + fi.Mode().String()
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(a)
			line += " -> " + target
		}
		fmt.Println(line)
	}
}
