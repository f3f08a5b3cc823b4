#!/bin/sh
# The MST lambda sweep's training runs (issue 13; results in docs/mst.md section 9).
# Each run fine-tunes the shipped CIFAR-10 VGG-small XNOR model (--init-xnor) for two
# short epochs of a seeded SUBSET-image subset (default 6400, i.e. 50 steps of 128 per
# epoch): the first with the trees rebuilt every 10 steps, the second with them frozen.
# One thread, niced (a shared 2-core machine).
# FREEZE=1 trains only the binary layers' latent weights (--freeze-float: float layers,
# batch norm (eval mode), alpha and biases as in the file); EPOCHS (default 2), LR
# (default 2e-4), SEED (default 0) and RAMP (--mst-ramp-epochs, default 0) as named; the last epoch keeps
# its trees frozen. LNORM=1 balances the pull per layer (--mst-layer-norm);
# SKIP=N leaves the first N binary convolutions unpenalised (--mst-skip-layers).
# Other data and models (docs/mst.md section 9.2): DATA (--data, default cifar10; DATA_PATH,
# the first argument, is its --data-path: the CIFAR archive, the Imagenette folder), ARCH
# (default vgg-small), SIZE (--image-size, only passed when set), INIT (--init-xnor, default
# models/cifar10-vggsmall-xnor.xnor), BATCH (default 128), LS (--label-smoothing, only passed
# when set), TESTSUB (--test-subset, default 1000). Unset, the command is the CIFAR one above.
# Usage: [SUBSET=N] [LATENT=V] [FREEZE=1] [LNORM=1] [SKIP=N] [EPOCHS=E] [SEED=S] [LR=X] [RAMP=R] [TAG=suffix] \
#     [DATA=name] [ARCH=a] [SIZE=px] [INIT=model.xnor] [BATCH=B] [LS=x] [TESTSUB=N] \
#     tools/mst_sweep_train.sh DATA_PATH RUNS_DIR "variant:lambda ..."
set -eu
data=$1
runs=$2
shift 2
for spec in $1; do
    variant=${spec%%:*}
    lam=${spec##*:}
    out="$runs/$variant-$lam${TAG:-}"
    [ -f "$out/last.pt" ] && continue
    freeze=
    if [ "${FREEZE:-0}" = 1 ]; then freeze=--freeze-float; fi
    if [ "${LNORM:-0}" = 1 ]; then freeze="$freeze --mst-layer-norm"; fi
    if [ "${SKIP:-0}" != 0 ]; then freeze="$freeze --mst-skip-layers $SKIP"; fi
    if [ -n "${LS:-}" ]; then freeze="$freeze --label-smoothing $LS"; fi
    size=
    if [ -n "${SIZE:-}" ]; then size="--image-size $SIZE"; fi
    nice -n 19 python -m xnor_train.train --data "${DATA:-cifar10}" --data-path "$data" $size --arch "${ARCH:-vgg-small}" \
        --width 64 --variant xnor --alpha-mode learned --init-xnor "${INIT:-models/cifar10-vggsmall-xnor.xnor}" \
        --init-latent "${LATENT:-0.002}" --epochs "${EPOCHS:-2}" --subset "${SUBSET:-6400}" --test-subset "${TESTSUB:-1000}" --batch-size "${BATCH:-128}" \
        --optimizer adam --lr "${LR:-2e-4}" --schedule cosine --seed "${SEED:-0}" --threads 1 --device cpu \
        --mst-lambda "$lam" --mst-variant "$variant" --mst-rebuild-steps 10 --mst-freeze-epochs 1 \
        --mst-ramp-epochs "${RAMP:-0}" $freeze \
        --out "$out" > "$out.log" 2>&1 || echo "run $out failed" >&2
done
