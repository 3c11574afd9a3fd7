# diffusion.c — build, install what is missing, run the demo, test.
#   make        ./diffusion with -O2 -Wall (what `cc diffusion.c -lm -O2` gives, plus warnings)
#   make fast   ./diffusion with -O3 and whichever of -march=native -fopenmp -fno-trapping-math the compiler
#               accepts (the last lets GCC vectorize SiLU's loops: see exp_real)
#   make deps   installs Debian's libstb-dev and dataset-fashion-mnist (and python3, for test.sh) when missing
#   make run    deps + fast build + the demo: train ~7 minutes, then samples.png and traj.png (and its score)
#   make test   deps + ./test.sh
#   make check  notes/check.c's claims: the lecture's claims, measured (notes/check.c includes diffusion.c)
#   make gradcheck  every hand-written backward vs finite differences, float and -DDOUBLE builds
#   make refcheck   the network's output, loss and gradients vs PyTorch's (data/unet_ref.bin,
#                   and the text model's data/unet_text_ref.bin)
#   make bench  notes/bench.c (fast build), side by side with PyTorch when python3-torch is installed
#   make fuzz   the fuzzers of notes/fuzz (long; see notes/fuzz/README.md)
#   make latent notes/latent: latent diffusion (an autoencoder, then the U-Net on its latents), with
#               -O3 and the optional flags; notes/latent.md
#   make web    notes/web/site/: the lecture in the browser, diffusion.c compiled to WebAssembly by Debian's
#               emscripten (see notes/web/README.md); serve it with any static server
CC ?= cc
CFLAGS ?= -O2 -Wall
# Optional flags, each kept only if a trial compile accepts it, so that one Makefile builds everywhere.
FAST_FLAGS := $(shell for f in -march=native -fopenmp -fno-trapping-math; do \
  echo 'int main(void){return 0;}' | $(CC) $$f -x c - -o /dev/null 2>/dev/null && printf '%s ' $$f; done)
PACKAGES = libstb-dev dataset-fashion-mnist
STB = /usr/include/stb/stb_image.h
FASHION = /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: all fast deps run test check gradcheck refcheck bench fuzz web clean latent
all: diffusion
diffusion: diffusion.c
	$(CC) $(CFLAGS) diffusion.c -lm -o diffusion

fast:
	@echo "fast build: -O3 $(FAST_FLAGS)"
	$(CC) -O3 -Wall $(FAST_FLAGS) diffusion.c -lm -o diffusion

# A fresh Debian machine knows no packages until `apt-get update` has run, so update first, then install.
deps:
	@missing=""; \
	[ -f $(STB) ] || [ -f stb_image.h ] || missing="$$missing libstb-dev"; \
	[ -f $(FASHION) ] || missing="$$missing dataset-fashion-mnist"; \
	command -v python3 >/dev/null 2>&1 || missing="$$missing python3"; \
	if [ -z "$$missing" ]; then echo "deps: all present ($(PACKAGES))"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; \
	else echo "deps: missing$$missing; please install them: sudo apt-get update && sudo apt-get install$$missing" >&2; exit 1; fi; \
	echo "deps: installing$$missing"; \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing || \
	{ echo "deps: apt-get failed; install by hand:$$missing" >&2; exit 1; }

run: deps fast
	./diffusion forward --data fashion-mnist --index 0 --out forward.png
	./diffusion train --minutes 7 --batch 32 --lr 1e-3 --min-snr 5 --ckpt demo.ckpt --log demo_loss.csv
	./diffusion sample --ckpt demo.ckpt --sampler dpm2m --steps 20 --clip-x0 --guidance 2 --n 80 --out samples.png --trajectory traj.png
	@if /usr/bin/python3 -c 'import torch' 2>/dev/null; then \
	  echo "Scoring the demo (notes/score.md): 1000 more samples with the same sampler, ~3 minutes"; \
	  ./diffusion sample --ckpt demo.ckpt --sampler dpm2m --steps 20 --clip-x0 --guidance 2 --n 1000 --seed 2 \
	    --out demo_score.png >/dev/null && /usr/bin/python3 notes/score.py demo_score.png; \
	else echo "(With Debian's python3-torch installed, make run also scores the samples: notes/score.md.)"; fi
	@echo
	@echo "Open samples.png (one row per class), traj.png (noise to image) and forward.png (image to noise)."
	@echo "The shipped model, trained for longer:  ./diffusion sample --sampler dpm2m --out shipped.png --trajectory shipped_traj.png"
	@echo "Next: read diffusion.c beside the slides (notes/README.md maps each equation to its function)."

test: deps
	./test.sh

# The companions under notes/ include diffusion.c whole (without its main) and add their commands.
notes/check: notes/check.c diffusion.c
	$(CC) $(CFLAGS) notes/check.c -lm -o $@
notes/check-double: notes/check.c diffusion.c
	$(CC) $(CFLAGS) -DDOUBLE notes/check.c -lm -o $@
check: notes/check
	notes/check claims
gradcheck: notes/check notes/check-double
	notes/check gradcheck
	notes/check-double gradcheck
refcheck: notes/check
	notes/check refcheck

bench:
	@echo "bench build: -O3 $(FAST_FLAGS)"
	$(CC) -O3 -Wall $(FAST_FLAGS) -DBUILD_FLAGS='"-O3 -Wall $(FAST_FLAGS)"' notes/bench.c -lm -o notes/bench
	notes/bench.sh notes/bench

fuzz:
	$(MAKE) -C notes/fuzz run

web: deps
	$(MAKE) -C notes/web

# notes/latent.c includes diffusion.c too; fast, as training is what it is for.
latent: notes/latent.c diffusion.c
	@echo "latent build: -O3 $(FAST_FLAGS)"
	$(CC) -O3 -Wall $(FAST_FLAGS) notes/latent.c -lm -o notes/latent

clean:
	rm -f diffusion *.tmp forward.png samples.png traj.png demo.ckpt demo_loss.csv model.ckpt
	rm -rf notes/web/site notes/web/web-native notes/check notes/check-double notes/bench notes/latent
