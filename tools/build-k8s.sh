#!/usr/bin/env bash
# Build the Kubernetes control-plane binaries used by tests/cluster (and helm for chart tests)
# from the Go module proxy, into a cache directory OUTSIDE the repository.
#
#   tools/build-k8s.sh                 build what is missing, print the bin dir on the last line
#   tools/build-k8s.sh --print-bin-dir print the bin dir; exit 1 (message on stderr) if a
#                                      required binary is missing. Builds nothing.
#
# Pinned versions come from the wrapper modules tools/k8s, tools/etcd, tools/helm (go.mod +
# go.sum are committed). Binaries land in
#   ${KLAMBDA_CACHE_DIR:-$HOME/.cache/klambda}/k8s-bin/k8s-<v>_etcd-<v>_helm-<v>/
# and a binary that already exists there is not rebuilt (idempotent).
# If KUBEBUILDER_ASSETS (envtest's convention) names a directory containing all five
# control-plane binaries (etcd kube-apiserver kube-controller-manager kube-scheduler kubectl),
# that directory is used and nothing is built.
#
# Environment: KLAMBDA_CACHE_DIR, KLAMBDA_GO_P (go build -p, default 2), KLAMBDA_SKIP_HELM=1,
# GOMODCACHE/GOCACHE (Go defaults are fine; keep them between CI runs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLUSTER_BINS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

mod_version() { # <go.mod> <module path>
    awk -v m="$2" '$0 !~ /=>/ && $1 == m {print $2; exit} $0 !~ /=>/ && $1 == "require" && $2 == m {print $3; exit}' "$1"
}
K8S_VERSION="$(mod_version "$HERE/k8s/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(mod_version "$HERE/etcd/go.mod" go.etcd.io/etcd/server/v3)"
HELM_VERSION="$(mod_version "$HERE/helm/go.mod" helm.sh/helm/v4)"
CACHE_DIR="${KLAMBDA_CACHE_DIR:-$HOME/.cache/klambda}"
BIN_DIR="$CACHE_DIR/k8s-bin/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}"

has_all() { # <dir>
    local b
    for b in "${CLUSTER_BINS[@]}"; do [[ -x "$1/$b" ]] || return 1; done
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && has_all "$KUBEBUILDER_ASSETS"; then
    echo "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS (nothing built)" >&2
    echo "$KUBEBUILDER_ASSETS"
    exit 0
fi

if [[ "${1:-}" == "--print-bin-dir" ]]; then
    if ! has_all "$BIN_DIR"; then
        echo "control-plane binaries missing in $BIN_DIR: run tools/build-k8s.sh" >&2
        echo "$BIN_DIR"
        exit 1
    fi
    echo "$BIN_DIR"
    exit 0
elif [[ -n "${1:-}" ]]; then
    echo "usage: $0 [--print-bin-dir]" >&2
    exit 2
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
GO_P="${KLAMBDA_GO_P:-2}"
mkdir -p "$BIN_DIR"
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
K8S_MINOR="$(echo "$K8S_VERSION" | cut -d. -f2)"
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    K8S_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
    K8S_LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
done

build() { # <module dir> <binary name> <package> <ldflags>
    local out="$BIN_DIR/$2"
    if [[ -x "$out" ]]; then
        echo "have $2 ($out)" >&2
        return 0
    fi
    local start=$SECONDS
    echo "building $2 from $3 ..." >&2
    (cd "$HERE/$1" && nice -n 10 go build -p "$GO_P" -trimpath -ldflags "$4" -o "$out.tmp" "$3")
    mv "$out.tmp" "$out"
    echo "built $2 in $((SECONDS - start))s" >&2
}

TOTAL_START=$SECONDS
build etcd etcd go.etcd.io/etcd/server/v3 "-s -w"
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    build k8s "$b" "k8s.io/kubernetes/cmd/$b" "$K8S_LDFLAGS"
done
if [[ "${KLAMBDA_SKIP_HELM:-}" != "1" ]]; then
    build helm helm helm.sh/helm/v4/cmd/helm \
        "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
fi
echo "all binaries present ($((SECONDS - TOTAL_START))s)" >&2
echo "$BIN_DIR"
