################################################################################
#
# ovn
#
################################################################################

# STUB: written, never built. OVN 24.09 pairs with Open vSwitch 3.4 (package/openvswitch).
OVN_VERSION = 24.09.0
OVN_SITE = https://github.com/ovn-org/ovn/releases/download/v$(OVN_VERSION)
OVN_SOURCE = ovn-$(OVN_VERSION).tar.gz
OVN_LICENSE = Apache-2.0
OVN_LICENSE_FILES = LICENSE NOTICE
# TODO(hash): no ovn.hash yet: add the release tarball's sha256 and the LICENSE line.
OVN_DEPENDENCIES = openvswitch host-python3 openssl

OVN_CONF_ENV = PYTHON3=$(HOST_DIR)/bin/python3
# OVN compiles OVS's lib/ sources in and links libopenvswitch from the OVS build tree.
# TODO(build): check that the OVS tree built by package/openvswitch is accepted as-is (OVN's
# configure wants the same OVS branch as its ovs/ submodule), and whether OVN's
# `make` needs OVS's generated headers rebuilt with the same CFLAGS.
OVN_CONF_OPTS = \
	--with-ovs-source=$(OPENVSWITCH_SRCDIR) \
	--with-ovs-build=$(OPENVSWITCH_SRCDIR) \
	--localstatedir=/var \
	--with-rundir=/run/ovn \
	--with-logdir=/var/log/ovn \
	--with-dbdir=/var/lib/ovn \
	--enable-ssl \
	--disable-werror

$(eval $(autotools-package))
