################################################################################
#
# etcd
#
################################################################################

# TODO(version): the Debian ISO ships Debian's etcd-server (3.4.23 on bookworm). 3.5 members
# can join a 3.4 cluster (the cluster version stays 3.4 until every member runs 3.5), so mixed
# Debian/Buildroot clusters can upgrade in place; pick the release the ISO moves to.
ETCD_VERSION = 3.5.17
ETCD_SITE = $(call github,etcd-io,etcd,v$(ETCD_VERSION))
ETCD_LICENSE = Apache-2.0
ETCD_LICENSE_FILES = LICENSE
# TODO(hash): there is no etcd.hash yet. Buildroot hashes the tarball *after* vendoring Go
# modules (etcd-3.5.17-go2.tar.gz, "go mod vendor" at download time), so the hash can only
# be computed by a machine that can download: run `make etcd-source` once, then
# `sha256sum dl/etcd/etcd-$(ETCD_VERSION)-go2.tar.gz` into etcd.hash together with
# `sha256 <hash> LICENSE`. A .hash file without the tarball's line would fail the download.

# The etcd server's main package is in server/ (its own Go module since 3.5); its go.mod
# replaces the api/ and client/ modules with ../, which "go mod vendor" copies into
# server/vendor.
ETCD_SUBDIR = server
ETCD_GOMOD = go.etcd.io/etcd/server/v3
ETCD_BUILD_TARGETS = .
ETCD_BIN_NAME = etcd
ETCD_LDFLAGS = -X go.etcd.io/etcd/api/v3/version.GitSHA=v$(ETCD_VERSION)
# A static, cgo-free binary, as upstream releases it.
ETCD_GO_ENV = CGO_ENABLED=0

$(eval $(golang-package))
