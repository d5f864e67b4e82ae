# Parapet: `make` builds the hypervisor (build/parapet.elf) and the test guest's tools.
.PHONY: all hv guest test-unit clean
all: hv guest

hv:
	$(MAKE) -C hv

guest:
	@if [ -f guest/Makefile ]; then $(MAKE) -C guest; fi

test-unit:
	$(MAKE) -C hv test

clean:
	rm -rf build
