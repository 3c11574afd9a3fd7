#!/bin/bash
# reliability.sh — fault tests for diffusion.c: full disks, file-size limits, unwritable paths, kill -9 at random
# moments, Ctrl-C, a NaN in the weights. The claims under test (issue 6):
#   - a write that fails ends with ONE line "diffusion: <path>: <why>" and a non-zero exit, never a crash;
#   - the previous checkpoint (or picture) is then byte-for-byte what it was (written to <path>.tmp, renamed);
#   - a training killed at any moment leaves a checkpoint that loads and resumes;
#   - a NaN/Inf loss stops training with a message naming the step, and the checkpoint is left alone.
# Each check prints PASS or FAIL and why; the last line is "N passed, N failed"; exit 1 on any FAIL.
#
#   usage: notes/reliability.sh ./diffusion        (about a minute; KILLS=50 for more kill -9 rounds)
# Needs python3 (its standard library only) and Debian's dataset-fashion-mnist (make deps).
D=$1
KILLS=${KILLS:-20}
FASHION=/usr/share/datasets/fashion-mnist
if [ -z "$D" ] || [ ! -x "$D" ]; then echo "usage: $0 PATH_TO_DIFFUSION_BINARY" >&2; exit 2; fi
case $D in /*) ;; *) D=$PWD/$D ;; esac
for need in python3 cmp; do
    command -v $need >/dev/null || { echo "reliability: needs $need" >&2; exit 2; }
done
[ -f $FASHION/train-images-idx3-ubyte.gz ] || { echo "reliability: needs $FASHION (make deps)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/diffusion-reliability.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 2
passed=0 failed=0
pass() { echo "PASS  $*"; passed=$((passed + 1)); }
fail() { echo "FAIL  $*"; failed=$((failed + 1)); }

# A small data set: the first 200 Fashion-MNIST images and their labels, as uncompressed idx files (the labels
# are found by name: ...images-idx3... -> ...labels-idx1...). A tiny network (--width 8) trains at batch 4.
python3 - "$FASHION" <<'EOF'
import gzip, struct, sys
n = 200
images = gzip.open(sys.argv[1] + "/train-images-idx3-ubyte.gz").read()
labels = gzip.open(sys.argv[1] + "/train-labels-idx1-ubyte.gz").read()
open("small-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 2051, n, 28, 28) + images[16:16 + n * 784])
open("small-labels-idx1-ubyte", "wb").write(struct.pack(">II", 2049, n) + labels[8:8 + n])
EOF
DATA=small-images-idx3-ubyte
train() { "$D" train --data $DATA --batch 4 "$@"; }  # (in the background, run "$D" itself: $! must be its pid)

# expect_error NAME PATH STATUS STDERR_FILE: the run failed (STATUS != 0, not a signal) and stderr has exactly one
# "diffusion: " line, the last one, naming PATH.
expect_error() {
    local name=$1 path=$2 status=$3 err=$4
    local lines last
    lines=$(grep -c '^diffusion: ' "$err")
    last=$(tail -n 1 "$err")
    if [ "$status" = 0 ]; then fail "$name: exit status 0, expected an error"; return 1; fi
    if [ "$status" -gt 128 ]; then fail "$name: killed by signal $((status - 128)): $last"; return 1; fi
    if [ "$lines" != 1 ] || [ "${last#"diffusion: $path: "}" = "$last" ]; then
        fail "$name: expected one line 'diffusion: $path: ...', got: $(grep '^diffusion: ' "$err" | head -3)"
        return 1
    fi
    return 0
}

# the checkpoint every test starts from: a tiny network after 2 steps
if ! train --width 8 --steps 2 --ckpt base.ckpt 2> base.err; then
    cat base.err
    fail "setup: cannot train the tiny model"
    echo "$passed passed, $failed failed"
    exit 1
fi

# ---- 1. Full disk: pictures and checkpoints written to /dev/full ------------------------------------------------
"$D" forward --data $DATA --index 0 --out /dev/full > /dev/null 2> err; status=$?
expect_error "forward --out /dev/full" /dev/full $status err && pass "forward --out /dev/full: $(tail -n 1 err)"

train --width 8 --steps 1 --ckpt /dev/full 2> err; status=$?
expect_error "train --ckpt /dev/full" /dev/full $status err && pass "train --ckpt /dev/full: $(tail -n 1 err)"

"$D" export --ckpt base.ckpt --out /dev/full > /dev/null 2> err; status=$?
expect_error "export --out /dev/full" /dev/full $status err && pass "export --out /dev/full: $(tail -n 1 err)"

# The loss log is written line by line during training; a full disk must not go unnoticed either: the checkpoint
# is still saved, then the log's failure is reported.
train --width 8 --steps 2 --ckpt l.ckpt --log /dev/full 2> err; status=$?
if expect_error "train --log /dev/full" /dev/full $status err; then
    if train --resume --steps 1 --ckpt l.ckpt 2> /dev/null; then pass "train --log /dev/full: $(tail -n 1 err); checkpoint saved"
    else fail "train --log /dev/full: no usable checkpoint"; fi
fi

# ---- 2. A file-size limit (ulimit -f): the write fails with EFBIG, the old file stays ----------------------------
# With SIGXFSZ ignored (trap ''), exceeding the limit makes write() fail with EFBIG, which the program must report.
cp base.ckpt a.ckpt
( trap '' XFSZ; ulimit -f 64; exec "$D" train --data $DATA --batch 4 --resume --steps 1 --ckpt a.ckpt ) 2> err; status=$?
if expect_error "checkpoint over ulimit -f 64 KB" a.ckpt $status err; then
    if ! cmp -s a.ckpt base.ckpt; then fail "checkpoint over ulimit -f: the previous checkpoint changed"
    elif [ -e a.ckpt.tmp ]; then fail "checkpoint over ulimit -f: a.ckpt.tmp left behind"
    else pass "checkpoint over ulimit -f 64 KB: $(tail -n 1 err); previous checkpoint byte-identical"; fi
fi
# The same for a picture: a first strip is written, the second one runs into a 1 KB limit.
"$D" forward --data $DATA --index 0 --out strip.png > /dev/null 2>&1 && cp strip.png strip.orig
( trap '' XFSZ; ulimit -f 1; exec "$D" forward --data $DATA --index 1 --out strip.png ) > /dev/null 2> err; status=$?
if expect_error "picture over ulimit -f 1 KB" strip.png $status err; then
    if cmp -s strip.png strip.orig && [ ! -e strip.png.tmp ]; then pass "picture over ulimit -f 1 KB: $(tail -n 1 err); previous picture byte-identical"
    else fail "picture over ulimit -f: the previous picture changed or strip.png.tmp was left"; fi
fi
# Without the trap the kernel's default for SIGXFSZ is to kill the process (with a core dump); the program
# should ignore SIGXFSZ itself, so that a file-size limit is a write error like any other, with its message.
cp base.ckpt a.ckpt
{ ( ulimit -f 64; exec "$D" train --data $DATA --batch 4 --resume --steps 1 --ckpt a.ckpt ) 2> err; } 2> /dev/null; status=$?
if expect_error "checkpoint over ulimit -f, SIGXFSZ not ignored by the shell" a.ckpt $status err && cmp -s a.ckpt base.ckpt; then
    pass "checkpoint over ulimit -f, default SIGXFSZ: $(tail -n 1 err); previous checkpoint byte-identical"
elif ! cmp -s a.ckpt base.ckpt; then
    fail "checkpoint over ulimit -f, default SIGXFSZ: the previous checkpoint changed"
fi

# ---- 3. Unwritable places --------------------------------------------------------------------------------------
train --width 8 --steps 1 --ckpt no/such/dir/a.ckpt 2> err; status=$?
expect_error "checkpoint into a missing folder" no/such/dir/a.ckpt $status err && pass "checkpoint into a missing folder: $(tail -n 1 err)"
mkdir adir
train --width 8 --steps 1 --ckpt adir 2> err; status=$?
expect_error "checkpoint onto a folder" adir $status err && pass "checkpoint onto a folder: $(tail -n 1 err)"

# ---- 4. kill -9 at random moments -------------------------------------------------------------------------------
# Each round resumes for 1..3 steps (load, train, save: write <path>.tmp, fsync, rename) and is killed with
# SIGKILL. Odd rounds kill after a random delay spanning the whole run; even rounds aim at the save, the dangerous
# moment: they wait for k.ckpt.tmp to appear, then kill within 0..20 ms. Afterwards the checkpoint must be the
# old one or a complete new one: it must load and resume (exit 0), and a k.ckpt.tmp left by a kill in the middle
# of the save must neither be taken for the checkpoint nor get in the way of the next save.
cp base.ckpt k.ckpt
start=$(date +%s%N)
train --resume --steps 2 --ckpt k.ckpt 2> /dev/null
run_ms=$((($(date +%s%N) - start) / 1000000 + 50))
old=0 new=0 tmp=0 finished=0 bad=0
for round in $(seq 1 "$KILLS"); do
    cp k.ckpt before.ckpt
    "$D" train --data $DATA --batch 4 --resume --steps $((1 + RANDOM % 3)) --ckpt k.ckpt 2> /dev/null &
    pid=$!
    if [ $((round % 2)) = 1 ]; then
        ms=$((RANDOM % run_ms))
    else
        while [ ! -e k.ckpt.tmp ] && kill -0 $pid 2> /dev/null; do sleep 0.005; done
        ms=$((RANDOM % 21))
    fi
    sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
    if kill -9 $pid 2> /dev/null; then :; else finished=$((finished + 1)); fi
    wait $pid 2> /dev/null
    if cmp -s k.ckpt before.ckpt; then old=$((old + 1)); else new=$((new + 1)); fi
    [ -e k.ckpt.tmp ] && tmp=$((tmp + 1))
    if ! train --resume --steps 1 --ckpt k.ckpt 2> err; then
        bad=$((bad + 1))
        echo "  round $round (killed after $ms ms): the checkpoint does not resume: $(tail -n 1 err)"
        cp base.ckpt k.ckpt
    elif [ -e k.ckpt.tmp ]; then
        bad=$((bad + 1))
        echo "  round $round: k.ckpt.tmp still there after a successful save"
    fi
done
summary="$KILLS kills: $old left the old checkpoint, $new a new one; $tmp hit the save (a .tmp was left), $finished came after the end"
if [ $bad = 0 ]; then pass "kill -9 during training: $summary; every checkpoint resumed"
else fail "kill -9 during training: $bad of $KILLS checkpoints did not resume ($summary)"; fi

# ---- 5. Ctrl-C saves and stops ---------------------------------------------------------------------------------
cp base.ckpt c.ckpt
"$D" train --data $DATA --batch 4 --resume --steps 100000 --ckpt c.ckpt 2> err &
pid=$!
# Ctrl-C is caught once the "training ..." line is out (before that, SIGINT is still the shell's: ignored in a
# background job); then let it train a moment, interrupt, and wait at most 30 s for the save.
for i in $(seq 1 300); do grep -q '^training ' err && break; sleep 0.1; done
sleep 1
kill -INT $pid
for i in $(seq 1 300); do kill -0 $pid 2> /dev/null || break; sleep 0.1; done
kill -9 $pid 2> /dev/null
wait $pid 2> /dev/null; status=$?
if [ $status = 0 ] && grep -q '^interrupted: saved c.ckpt at step' err && ! cmp -s c.ckpt base.ckpt &&
   train --resume --steps 1 --ckpt c.ckpt 2> /dev/null; then
    pass "Ctrl-C: $(grep '^interrupted' err | cut -d';' -f1), exit 0, resumes"
else
    fail "Ctrl-C: exit $status, $(tail -n 1 err)"
fi

# ---- 6. A corrupt checkpoint is refused and left as it is --------------------------------------------------------
# poke FILE OFFSET BYTES: overwrite bytes in place
poke() { python3 -c "import sys; f = open(sys.argv[1], 'r+b'); f.seek(int(sys.argv[2])); f.write(bytes.fromhex(sys.argv[3]))" "$@"; }
cp base.ckpt bad.ckpt
poke bad.ckpt 5000 ff
cp bad.ckpt bad.orig
train --resume --steps 1 --ckpt bad.ckpt 2> err; status=$?
if expect_error "resume from a corrupt checkpoint" bad.ckpt $status err; then
    if cmp -s bad.ckpt bad.orig; then pass "resume from a corrupt checkpoint: $(tail -n 1 err); file untouched"
    else fail "resume from a corrupt checkpoint: the file was changed"; fi
fi

# ---- 7. NaN or Inf in the weights: the loss is not finite, training stops and names the step ---------------------
# The checkpoint format (CkptHeader in diffusion.c): a 96-byte header, then the float32 arrays params, EMA, AdamW m
# and v, then the CRC-32 (zlib's) of everything before it, little-endian. We set parameter 0 and recompute the CRC,
# so that the file is valid and only the numbers are wrong.
for value in nan inf; do
    python3 - base.ckpt w.ckpt $value <<'EOF'
import struct, sys, zlib
data = bytearray(open(sys.argv[1], "rb").read()[:-4])
data[96:100] = struct.pack("<f", float(sys.argv[3]))
open(sys.argv[2], "wb").write(data + struct.pack("<I", zlib.crc32(data)))
EOF
    cp w.ckpt w.orig
    train --resume --steps 2 --ckpt w.ckpt 2> err; status=$?
    if expect_error "weight 0 = $value" train $status err; then
        if ! grep -q '^diffusion: train: .*step' err; then fail "weight 0 = $value: the message names no step: $(tail -n 1 err)"
        elif ! cmp -s w.ckpt w.orig || [ -e w.ckpt.tmp ]; then fail "weight 0 = $value: the checkpoint was changed"
        else pass "weight 0 = $value: $(tail -n 1 err | cut -c1-60)...; checkpoint byte-identical"; fi
    fi
done

echo "$passed passed, $failed failed"
[ $failed = 0 ]
