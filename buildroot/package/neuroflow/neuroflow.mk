################################################################################
#
# neuroflow
#
################################################################################

# Keep in step with "version" in the source tree's package.json.
NEUROFLOW_VERSION = 0.1.0
# The prebuilt dist/ directory, copied with Buildroot's local site method (rsync): nothing is
# downloaded, so there is no neuroflow.hash (Buildroot checks no hashes for local sources).
NEUROFLOW_SITE = $(call qstrip,$(BR2_PACKAGE_NEUROFLOW_DIST_DIR))
NEUROFLOW_SITE_METHOD = local
NEUROFLOW_LICENSE = Apache-2.0
NEUROFLOW_INSTALL_STAGING = NO

# The ELF interpreter the Bun executable must ask for on this toolchain. Bun's musl build
# (--target=bun-linux-x64-musl) also lists libc.musl-x86_64.so.1 (Alpine's name) as NEEDED:
# musl's dynamic linker resolves every "libc.*" name to itself, so no symlink is needed; its
# other NEEDED library, libstdc++.so.6, comes with BR2_INSTALL_LIBSTDCPP.
ifeq ($(BR2_TOOLCHAIN_USES_MUSL),y)
NEUROFLOW_INTERPRETER = /lib/ld-musl-x86_64.so.1
NEUROFLOW_BUN_TARGET = bun-linux-x64-musl
else
NEUROFLOW_INTERPRETER = /lib64/ld-linux-x86-64.so.2
NEUROFLOW_BUN_TARGET = bun-linux-x64
endif

# Nothing to compile: check that the prebuilt binaries exist and fit this C library.
define NEUROFLOW_BUILD_CMDS
	test -x $(@D)/neuroflow || { \
		echo "neuroflow: $(NEUROFLOW_SITE)/neuroflow is missing: build it first (npm run build)" >&2; \
		exit 1; }
	test -x $(@D)/neuroflow-agent || { \
		echo "neuroflow: $(NEUROFLOW_SITE)/neuroflow-agent is missing: npm run build:agent" >&2; \
		exit 1; }
	interp=`$(TARGET_READELF) -l $(@D)/neuroflow | \
		sed -n 's/.*Requesting program interpreter: \(.*\)\]$$/\1/p'`; \
	if [ "$$interp" != "$(NEUROFLOW_INTERPRETER)" ]; then \
		echo "neuroflow: $(NEUROFLOW_SITE)/neuroflow asks for '$$interp', this image needs" \
			"'$(NEUROFLOW_INTERPRETER)': compile it with" \
			"bun build --compile --target=$(NEUROFLOW_BUN_TARGET)" >&2; \
		exit 1; \
	fi
	if $(TARGET_READELF) -l $(@D)/neuroflow-agent | grep -q 'Requesting program interpreter'; then \
		echo "neuroflow: neuroflow-agent must be a static binary (scripts/build-agent.sh)" >&2; \
		exit 1; \
	fi
endef

define NEUROFLOW_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/neuroflow $(TARGET_DIR)/usr/bin/neuroflow
	$(INSTALL) -D -m 0755 $(@D)/neuroflow-agent \
		$(TARGET_DIR)/usr/lib/neuroflow/neuroflow-agent
	mkdir -p $(TARGET_DIR)/var/lib/neuroflow
endef

$(eval $(generic-package))
