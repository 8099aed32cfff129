#!/bin/sh
# One command per model; starts (or resumes) the run in the background and returns.
#   tools/train/run.sh pretrain            # MLM pre-training of the encoder
#   tools/train/run.sh intermediate        # multi-task training of the encoder on the other labelled sets
#   tools/train/run.sh sentiment|type|industry|ner [finetune.py options, e.g. --fresh]
# Log: tools/train/work/<run>/train.log (stdout/stderr: .../nohup.out), pid: .../pid
# Threads: FINBERT_TRAIN_THREADS (default 1). Stop: kill "$(cat tools/train/work/<run>/pid)"
# (SIGTERM -> checkpoint, then exit); run the same command again to resume.
set -e
here=$(cd "$(dirname "$0")" && pwd)
task=${1:?usage: run.sh pretrain|intermediate|sentiment|type|industry|ner [options]}
shift
export FINBERT_TRAIN_THREADS=${FINBERT_TRAIN_THREADS:-1}
if [ "$task" = pretrain ]; then
    dir=$here/work/pretrain; cmd="$here/pretrain.py"
elif [ "$task" = intermediate ]; then
    dir=$here/work/intermediate; cmd="$here/intermediate.py"
else
    dir=$here/work/ft-$task; cmd="$here/finetune.py $task"
fi
mkdir -p "$dir"
if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "$task already running (pid $(cat "$dir/pid")); log: $dir/train.log"; exit 0
fi
nohup python3 $cmd "$@" >>"$dir/nohup.out" 2>&1 &
echo $! >"$dir/pid"
echo "started $task (pid $!, $FINBERT_TRAIN_THREADS thread(s)); log: $dir/train.log"
