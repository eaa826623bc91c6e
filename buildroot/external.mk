# Buildroot includes this after all of its own package/*/*.mk files.
include $(sort $(wildcard $(BR2_EXTERNAL_NEUROFLOW_PATH)/package/*/*.mk))
