// A CNI runtime built on libcni, driven by the test suite and bench/cni-latency.ts. It calls
// libcni exactly as Cloud Foundry's garden-external-networker does: the conflist is loaded with
// libcni, `metadata` and `runtimeConfig` are put into every plugin's config with InjectConf, and the
// network is added, checked and deleted with AddNetworkList / CheckNetworkList / DelNetworkList;
// validation is ValidateNetworkList and GetVersionInfo, as podman and containerd do.
//
// Built offline in GOPATH mode against Debian's libcni source (golang-github-appc-cni-dev, under
// /usr/share/gocode): GO111MODULE=off GOPATH=/usr/share/gocode go build -o driver driver.go
//
// One operation per process, one JSON object on stdout: {"ok":true,...} (exit 0) or
// {"ok":false,"error":"..."} (exit 1).
//
//	driver -op add|check|del -conflist FILE -path DIR[:DIR] -cache DIR -id ID -netns PATH -ifname IF
//	       [-runtime-config JSON] [-metadata JSON]
//	driver -op validate -conflist FILE -path DIRS        (ValidateNetworkList: capabilities)
//	driver -op version -plugin TYPE -path DIRS           (GetVersionInfo)
//	driver -op bench -path DIRS -cache DIR -runs N -warmup N -variant NAME=CONFLIST=NETNS ...
//	       (ADD then DEL per call, variants taking turns call by call; ms per call for each)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
)

type variants []string

func (v *variants) String() string     { return strings.Join(*v, ",") }
func (v *variants) Set(s string) error { *v = append(*v, s); return nil }

func fail(format string, args ...interface{}) {
	out, _ := json.Marshal(map[string]interface{}{"ok": false, "error": fmt.Sprintf(format, args...)})
	fmt.Println(string(out))
	os.Exit(1)
}

func succeed(fields map[string]interface{}) {
	fields["ok"] = true
	out, err := json.Marshal(fields)
	if err != nil {
		fail("encoding the answer: %v", err)
	}
	fmt.Println(string(out))
	os.Exit(0)
}

func jsonObject(name, text string) map[string]interface{} {
	if text == "" {
		return nil
	}
	var m map[string]interface{}
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		fail("-%s is not a JSON object: %v", name, err)
	}
	return m
}

// inject does what garden-external-networker's CNIController.Up does to every plugin of the list.
func inject(list *libcni.NetworkConfigList, metadata, runtimeConfig map[string]interface{}) error {
	extra := map[string]interface{}{}
	if len(metadata) > 0 {
		extra["metadata"] = metadata
	}
	if len(runtimeConfig) > 0 {
		extra["runtimeConfig"] = runtimeConfig
	}
	for i, plugin := range list.Plugins {
		injected, err := libcni.InjectConf(plugin, extra)
		if err != nil {
			return fmt.Errorf("adding extra data to CNI config: %w", err)
		}
		list.Plugins[i] = injected
	}
	return nil
}

func main() {
	op := flag.String("op", "", "add, check, del, validate, version or bench")
	conflist := flag.String("conflist", "", "network configuration list file")
	path := flag.String("path", "", "plugin directories, ':'-separated (CNI_PATH)")
	cache := flag.String("cache", "", "libcni cache directory (results of ADD)")
	id := flag.String("id", "", "container ID")
	netns := flag.String("netns", "", "container network namespace path")
	ifname := flag.String("ifname", "eth0", "interface name")
	runtimeConfig := flag.String("runtime-config", "", "runtimeConfig JSON (garden-external-networker's legacyNetConf)")
	metadata := flag.String("metadata", "", "metadata JSON (Garden's properties)")
	plugin := flag.String("plugin", "", "plugin type (version)")
	runs := flag.Int("runs", 10, "bench: measured ADD+DEL pairs per variant")
	warmup := flag.Int("warmup", 2, "bench: unmeasured pairs per variant first")
	var vs variants
	flag.Var(&vs, "variant", "bench: NAME=CONFLIST=NETNS (repeatable)")
	flag.Parse()

	ctx := context.Background()
	cni := libcni.NewCNIConfigWithCacheDir(strings.Split(*path, ":"), *cache, nil)
	load := func(file string) *libcni.NetworkConfigList {
		list, err := libcni.ConfListFromFile(file)
		if err != nil {
			fail("loading %s: %v", file, err)
		}
		if err := inject(list, jsonObject("metadata", *metadata), jsonObject("runtime-config", *runtimeConfig)); err != nil {
			fail("%v", err)
		}
		return list
	}
	rt := &libcni.RuntimeConf{ContainerID: *id, NetNS: *netns, IfName: *ifname}

	switch *op {
	case "add":
		result, err := cni.AddNetworkList(ctx, load(*conflist), rt)
		if err != nil {
			fail("add network list failed: %v", err)
		}
		// the result as the runtime sees it, in the list's version
		var raw map[string]interface{}
		text, _ := json.Marshal(result)
		_ = json.Unmarshal(text, &raw)
		succeed(map[string]interface{}{"result": raw})
	case "check":
		if err := cni.CheckNetworkList(ctx, load(*conflist), rt); err != nil {
			fail("check network list failed: %v", err)
		}
		succeed(map[string]interface{}{})
	case "del":
		if err := cni.DelNetworkList(ctx, load(*conflist), rt); err != nil {
			fail("del network failed: %v", err)
		}
		succeed(map[string]interface{}{})
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, load(*conflist))
		if err != nil {
			fail("validate network list failed: %v", err)
		}
		succeed(map[string]interface{}{"capabilities": caps})
	case "version":
		info, err := cni.GetVersionInfo(ctx, *plugin)
		if err != nil {
			fail("get version info failed: %v", err)
		}
		succeed(map[string]interface{}{"supportedVersions": info.SupportedVersions()})
	case "bench":
		bench(ctx, cni, vs, load, *runs, *warmup)
	default:
		fail("unknown -op %q", *op)
	}
}

type variant struct {
	Name  string    `json:"name"`
	Add   []float64 `json:"add"`
	Del   []float64 `json:"del"`
	list  *libcni.NetworkConfigList
	netns string
}

func bench(ctx context.Context, cni *libcni.CNIConfig, specs []string, load func(string) *libcni.NetworkConfigList, runs, warmup int) {
	var all []*variant
	for _, s := range specs {
		parts := strings.SplitN(s, "=", 3)
		if len(parts) != 3 {
			fail("-variant %q: want NAME=CONFLIST=NETNS", s)
		}
		all = append(all, &variant{Name: parts[0], list: load(parts[1]), netns: parts[2], Add: []float64{}, Del: []float64{}})
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for i := -warmup; i < runs; i++ {
		for _, v := range all {
			rt := &libcni.RuntimeConf{ContainerID: fmt.Sprintf("libcni-bench-%d-%d", os.Getpid(), i+warmup), NetNS: v.netns, IfName: "eth0"}
			t0 := time.Now()
			if _, err := cni.AddNetworkList(ctx, v.list, rt); err != nil {
				fail("%s: add network list failed: %v", v.Name, err)
			}
			t1 := time.Now()
			if err := cni.DelNetworkList(ctx, v.list, rt); err != nil {
				fail("%s: del network failed: %v", v.Name, err)
			}
			t2 := time.Now()
			if i >= 0 {
				v.Add = append(v.Add, ms(t1.Sub(t0)))
				v.Del = append(v.Del, ms(t2.Sub(t1)))
			}
		}
	}
	succeed(map[string]interface{}{"variants": all})
}
