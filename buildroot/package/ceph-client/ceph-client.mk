################################################################################
#
# ceph-client
#
################################################################################

# NOT BUILDABLE YET: BR2_PACKAGE_CEPH_CLIENT depends on BR2_BROKEN, so nothing here is ever
# enabled. What is missing, so that QEMU can open rbd: disks:
#
# 1. A package that builds only Ceph's client libraries (librados, librbd) for the target:
#    Ceph is CMake + C++17 + Boost (a large subset), with -DWITH_RBD=ON -DWITH_RADOSGW=OFF
#    -DWITH_CEPHFS=OFF -DWITH_MGR=OFF -DWITH_MGR_DASHBOARD_FRONTEND=OFF -DWITH_FUSE=OFF
#    -DWITH_TESTS=OFF -DWITH_SPDK=OFF -DWITH_BLUESTORE=OFF -DWITH_SYSTEMD=OFF, and
#    dependencies boost, openssl, libnl?, keyutils, util-linux (libblkid, libuuid), lz4,
#    snappy, zstd, python3 (host, for the build). It builds on musl: Alpine packages Ceph.
# 2. QEMU built with --enable-rbd. Buildroot's package/qemu/qemu.mk passes --disable-rbd
#    and has no option for it, and an external tree cannot add a dependency to an in-tree
#    package (dependencies are fixed when qemu.mk is evaluated, before external.mk is read).
#    So this needs a change to Buildroot itself, to carry as a patch or send upstream:
#
#        ifeq ($(BR2_PACKAGE_CEPH_CLIENT),y)
#        QEMU_OPTS += --enable-rbd
#        QEMU_DEPENDENCIES += ceph-client
#        endif
#
#    (QEMU's configure honours the last of --disable-rbd/--enable-rbd, and QEMU_OPTS
#    comes after the fixed --disable-rbd.)
#
# TODO(version,hash): pick the Ceph release the Debian ISO's librbd1 matches; add ceph-client.hash.
CEPH_CLIENT_VERSION = 19.2.0
CEPH_CLIENT_SITE = https://download.ceph.com/tarballs
CEPH_CLIENT_SOURCE = ceph-$(CEPH_CLIENT_VERSION).tar.gz
CEPH_CLIENT_LICENSE = LGPL-2.1 (librados, librbd), others
CEPH_CLIENT_LICENSE_FILES = COPYING COPYING-LGPL2.1
CEPH_CLIENT_INSTALL_STAGING = YES
CEPH_CLIENT_DEPENDENCIES = boost openssl util-linux lz4 snappy zstd keyutils host-python3
CEPH_CLIENT_CONF_OPTS = \
	-DWITH_RBD=ON \
	-DWITH_LIBRADOSSTRIPER=OFF \
	-DWITH_RADOSGW=OFF \
	-DWITH_CEPHFS=OFF \
	-DWITH_MGR=OFF \
	-DWITH_MGR_DASHBOARD_FRONTEND=OFF \
	-DWITH_FUSE=OFF \
	-DWITH_TESTS=OFF \
	-DWITH_SPDK=OFF \
	-DWITH_BLUESTORE=OFF \
	-DWITH_SYSTEMD=OFF \
	-DWITH_MANPAGE=OFF

$(eval $(cmake-package))
