package cluster

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// file is one visible file of a mounted volume.
type file struct {
	content string
	mode    fs.FileMode
}

// volumeView is a target directory read the way a pod reads it, with the `..data` layout
// checked: `..data` is a symlink to one timestamped `..<time>` directory, every visible entry is
// a symlink `name -> ..data/name`, and no other entries exist.
type volumeView struct {
	data  string          // where ..data points
	files map[string]file // visible name (nested paths as a/b) → content and mode
	dirs  []string        // the timestamped directories present
}

func readVolume(target string) (*volumeView, error) {
	entries, err := os.ReadDir(target)
	if err != nil {
		return nil, err
	}
	v := &volumeView{files: map[string]file{}}
	dataLink, err := os.Readlink(filepath.Join(target, "..data"))
	if err != nil {
		return nil, fmt.Errorf("..data: %w", err)
	}
	v.data = dataLink
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == "..data":
		case strings.HasPrefix(name, ".."):
			if !e.IsDir() {
				return nil, fmt.Errorf("%s: not a directory", name)
			}
			v.dirs = append(v.dirs, name)
		default:
			link, err := os.Readlink(filepath.Join(target, name))
			if err != nil {
				return nil, fmt.Errorf("visible entry %s is not a symlink: %w", name, err)
			}
			if link != filepath.Join("..data", name) {
				return nil, fmt.Errorf("visible entry %s -> %s, want ..data/%s", name, link, name)
			}
		}
	}
	if len(v.dirs) != 1 || v.dirs[0] != dataLink {
		return nil, fmt.Errorf("timestamped directories %v, ..data -> %s: want exactly the one ..data names", v.dirs, dataLink)
	}
	root := filepath.Join(target, dataLink)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		content, err := os.ReadFile(filepath.Join(target, rel)) // through the visible symlink
		if err != nil {
			return err
		}
		v.files[rel] = file{content: string(content), mode: info.Mode().Perm()}
		return nil
	})
	return v, err
}

func (v *volumeView) names() []string {
	var out []string
	for n := range v.files {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
