################################################################################
#
# openvswitch
#
################################################################################

# OVN builds against this source tree: keep the pair in step (OVN 24.09 goes with OVS 3.4).
OPENVSWITCH_VERSION = 3.4.1
OPENVSWITCH_SITE = https://www.openvswitch.org/releases
OPENVSWITCH_SOURCE = openvswitch-$(OPENVSWITCH_VERSION).tar.gz
OPENVSWITCH_LICENSE = Apache-2.0, LGPL-2.1 (lib/sflow*), SISSL (some files, see NOTICE)
OPENVSWITCH_LICENSE_FILES = LICENSE NOTICE
# TODO(hash): no openvswitch.hash yet (sources cannot be downloaded where this was written):
# add `sha256 <hash> openvswitch-$(OPENVSWITCH_VERSION).tar.gz` and the LICENSE line.
OPENVSWITCH_INSTALL_STAGING = YES
OPENVSWITCH_DEPENDENCIES = host-python3 openssl libcap-ng

OPENVSWITCH_CONF_ENV = PYTHON3=$(HOST_DIR)/bin/python3
OPENVSWITCH_CONF_OPTS = \
	--localstatedir=/var \
	--with-rundir=/run/openvswitch \
	--with-logdir=/var/log/openvswitch \
	--with-dbdir=/var/lib/openvswitch \
	--enable-ssl \
	--disable-sparse \
	--disable-werror

# OVN's build needs this configured and built tree, not only the installed files.
OPENVSWITCH_SRCDIR = $(OPENVSWITCH_DIR)

$(eval $(autotools-package))
