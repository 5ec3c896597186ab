# snnc.mk: compile ONNX models with snnc's C backend from a GNU Makefile.
#
#   include $(shell snnc --cmake-dir)/snnc.mk
#   $(eval $(call snnc_model,mnist,mnist.onnx,calib.npz,--arith fixed))
#   app: main.o libmnist.a
#   	$(CC) -o $@ $^
#   main.o: CPPFLAGS += $(mnist_CPPFLAGS)
#   main.o: mnist.snn/c/mnist.h
#
# snnc_model(NAME, MODEL, CALIB, OPTIONS) defines
#   NAME.snn/manifest.json   snnc's output folder (the stamp: rewritten by every run),
#   libNAME.a                the generated C as a static library,
#   NAME_CPPFLAGS            -I for the generated header NAME.h,
#   NAME_SOURCES             the generated .c files.
# snnc reruns only when the model, its external data, the calibration file or the
# config file change (snnc writes NAME.snn.d, a depfile, which this file includes);
# generated files whose content did not change keep their time stamps, so their objects
# are not rebuilt; the Makefile's default goal stays its own. SNNC is the snnc program to run (default: snnc on PATH).

SNNC ?= snnc

define snnc_model
snnc_saved_goal := $$(.DEFAULT_GOAL)
$(1)_SNN := $(1).snn
$(1)_SOURCES := $(1).snn/c/$(1).c $(1).snn/c/$(1)_weights.c
$(1)_CPPFLAGS := -I$(1).snn/c

$(1).snn/manifest.json: $(2) $(3)
	$$(SNNC) $(2) -o $(1).snn $(if $(3),--calib $(3)) --backend c --c-name $(1) --depfile $(1).snn.d $(4)

$(1).snn/c/$(1).c $(1).snn/c/$(1)_weights.c $(1).snn/c/$(1).h: $(1).snn/manifest.json
	@test -f $$@

$(1).snn/c/%.o: $(1).snn/c/%.c $(1).snn/c/$(1).h
	$$(CC) $$(CPPFLAGS) $$($(1)_CPPFLAGS) $$(CFLAGS) -c -o $$@ $$<

lib$(1).a: $(1).snn/c/$(1).o $(1).snn/c/$(1)_weights.o
	$$(AR) rcs $$@ $$^

-include $(1).snn.d
# the rules above do not become the Makefile's default goal
.DEFAULT_GOAL := $$(snnc_saved_goal)
endef
