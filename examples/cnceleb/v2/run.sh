#!/usr/bin/env bash
# CN-Celeb recipe: train on CN-Celeb1 dev + CN-Celeb2 (FLAC, with MUSAN / RIRS_NOISES
# augmentation), evaluate on CN-Celeb1's evaluation trials (CNC-Eval), enrolling each
# speaker as --enroll_mode says: concat (the released concatenated enrollment file)
# or average (the mean embedding of the enrollment utterances).
#
# Usage: bash run.sh [--stage N] [--stop_stage M] [--config conf/resnet34.yaml] [--gpus 0,1,2,3]
#        [--enroll_mode concat|average]
#
# Stages
#   1 prepare     [download,] unpack; data/{cnceleb_train,cnc_test,cnc_enroll_<mode>,musan,rirs};
#                 data/trials/CNC-Eval; data/cnceleb_train/cali_trials
#   2 lists       data/cnceleb_train/shard.list + shards/ (or raw.list)
#   3 train       exp/<name>/models/model_<epoch>.pt          (torchrun; resumes by itself)
#   4 average     exp/<name>/models/avg_model.pt
#   5 extract     exp/<name>/embeddings/{cnceleb_train,cnc_test,cnc_enroll_<mode>}; cnc_eval_<mode>
#                 (enrollment + test, the set scored); cnceleb_train_spk (speaker means)
#   6 score       exp/<name>/scores/CNC-Eval.<mode>.score      (cosine, cnceleb_train mean subtracted)
#   7 score_norm  exp/<name>/scores/CNC-Eval.<mode>.asnorm300.score (cohort: cnceleb_train speakers)
#   8 calibrate   exp/<name>/scores/CNC-Eval.<mode>.qmf.score  (QMF fitted on cnceleb_train trials)
#   9 metrics     exp/<name>/results.<mode>.md (the enrollment mode is in every file name and line)
#  10 export      exp/<name>/models/final.{onnx,pt}
#  11 lm          large-margin fine-tuning: stages 3-10 again with --lm_config into <exp_dir>-LM
set -euo pipefail

# ---- configuration section ----
stage=1
stop_stage=10
config=conf/resnet34.yaml
exp_dir=""                 # default: the config's exp_dir
enroll_mode=concat         # concat or average (see above); results are named after it
# stage 1: data
download=false             # true: run local/download_data.sh first
download_dir=data/download
rawdata_dir=data/raw
openslr_base_url=https://www.openslr.org/resources
checksums=""               # default: local/checksums.md5
cnceleb1_dir=""            # already unpacked CN-Celeb_flac / CN-Celeb2_flac (see local/prepare_data.sh)
cnceleb2_dir=""
aug_sets="musan rirs"
cali_rounds=5000           # calibration trials: 6 per round, from cnceleb_train
# stages 2-3: lists and training
data_type=shard            # shard or raw
num_utts_per_shard=1000
gpus=""                    # e.g. "0,1,2,3": one training process per GPU; "" trains on CPU
nproc=1                    # CPU training processes (when gpus is "")
nnodes=1                   # >1: torchrun multi-node, run on every node with the same options
rdzv_endpoint=""           # host:port of the first node (needed when nnodes > 1)
rdzv_id=wespk-cnceleb
model_init=""              # start from these model weights (stage 11 sets it)
num_avg=""                 # default: the config's num_avg
# stages 5-9
nj=4                       # extraction jobs (spread over the GPUs)
score_norm=asnorm          # asnorm or snorm
top_n=300                  # AS-norm cohort size
# stage 11
lm_config=conf/resnet34_lm.yaml
lm_exp_dir=""              # default: <exp_dir>-LM
help_message=$(sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//')
# ---- end of configuration section ----

. ./path.sh
. tools/parse_options.sh
. tools/recipe.sh

case $enroll_mode in concat|average) ;; *) log "ERROR: --enroll_mode must be concat or average"; exit 1 ;; esac
exp_dir=$(exp_dir_of "$config")
set_device "$gpus"
emb=$exp_dir/embeddings
enroll=cnc_enroll_$enroll_mode
eval_set=cnc_eval_$enroll_mode     # the enrollment embeddings and the test ones, built in stage 5
backend=(--exp_dir "$exp_dir" --train_set cnceleb_train --eval_set "$eval_set"
         --extract_sets "cnceleb_train cnc_test $enroll" --trials data/trials/CNC-Eval
         --names "CNC-Eval.$enroll_mode" --cali_set cnceleb_train --score_norm "$score_norm"
         --top_n "$top_n" --nj "$nj" --device "$device" --report_suffix ".$enroll_mode"
         --num_avg "$num_avg" --check_data data/cnc_test)

if run_stage 1; then
  log "stage 1: data (CN-Celeb1/2, $aug_sets, trials; enrollment: $enroll_mode)"
  if [ "$download" = true ]; then
    parts="cnceleb1 $aug_sets"
    [ "$cnceleb2_dir" = none ] || parts="cnceleb1 cnceleb2 $aug_sets"
    local/download_data.sh --download_dir "$download_dir" --openslr_base_url "$openslr_base_url" \
      --parts "$parts" ${checksums:+--checksums "$checksums"}
  fi
  local/prepare_data.sh --download_dir "$download_dir" --rawdata_dir "$rawdata_dir" --data data \
    --cnceleb1_dir "$cnceleb1_dir" --cnceleb2_dir "$cnceleb2_dir" --enroll_mode "$enroll_mode" \
    --aug_sets "$aug_sets" --nj "$nj"
  # QMF calibration trials from the training speakers (short/long duration conditions)
  python -m wespk.bin.make_calibration_trials --data_dir data/cnceleb_train --rounds "$cali_rounds" \
    --seed 777 --output data/cnceleb_train/cali_trials
fi

corpus_train_stages data/cnceleb_train

if stages_overlap 4 5; then
  tools/stages/backend.sh --stage "$stage" --stop_stage "$(( stop_stage < 5 ? stop_stage : 5 ))" "${backend[@]}"
fi

if run_stage 5; then
  # the scored set: one embedding per enrollment id, plus the test utterances
  mkdir -p "$emb/$eval_set"
  if [ "$enroll_mode" = average ]; then
    # an enrollment id is the "speaker" of its utterances: its embedding is their mean,
    # its duration (for QMF) their total
    python -m wespk.bin.speaker_mean --embeddings "$emb/$enroll/xvector.scp" \
      --utt2spk "data/$enroll/utt2spk" --output_dir "$emb/${enroll}_mean"
    awk 'NR == FNR { dur[$1] = $2; next } { total[$2] += dur[$1] }
         END { for (e in total) printf "%s %.3f\n", e, total[e] }' \
      "$emb/$enroll/utt2dur" "data/$enroll/utt2spk" | LC_ALL=C sort > "$emb/${enroll}_mean/utt2dur"
    enroll_emb=$emb/${enroll}_mean
  else
    enroll_emb=$emb/$enroll
  fi
  cat "$enroll_emb/xvector.scp" "$emb/cnc_test/xvector.scp" > "$emb/$eval_set/xvector.scp"
  cat "$enroll_emb/utt2dur" "$emb/cnc_test/utt2dur" > "$emb/$eval_set/utt2dur"
fi

if stages_overlap 6 10; then
  tools/stages/backend.sh --stage "$(( stage > 6 ? stage : 6 ))" --stop_stage "$stop_stage" "${backend[@]}"
fi

if run_stage 11; then
  large_margin_stage --enroll_mode "$enroll_mode"
fi
log "done (stages $stage..$stop_stage)"
