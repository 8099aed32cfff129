#!/bin/sh
# Prepares the directory of the pg_regress suite:
#
#   REGRESS_DIR/regress.conf   --temp-config: preload finbert, model_dir
#   REGRESS_DIR/regress-worker.conf  the same with finbert.execution = worker
#                              (the second pass of the suite runs on a
#                              directory of its own: tests modify models)
#   REGRESS_DIR/models/        finbert.model_dir of the test cluster:
#       cls cls_f16 multilabel ner encoder     copies of the fixture models
#       finbert-sentiment finbert-ner ...       copies of the shipped models
#       cls_link -> cls                         symbolic link inside (allowed)
#       formats/...                             weight formats (the formats test)
#       bad_config bad_weights bad_shape bad_vocab no_weights
#                                               one defect each (negative tests)
#       mutable                                 copy of cls, overwritten by a test
#       fragile                                 copy of cls whose config.json the
#                                               worker test breaks after registering it
#       escape_dir -> ../outside/cls            symbolic link leading outside
#       escape_file/model.safetensors -> ../../outside/cls/model.safetensors
#   REGRESS_DIR/outside/cls    a valid model outside finbert.model_dir
#   REGRESS_DIR/cli/           finbert-cli outputs for the parity test
#
# usage: prepare.sh REGRESS_DIR FIXTURE_MODELS_DIR FINBERT_CLI
set -eu

dir=$1
fixtures=$2
cli=$3
here=$(cd "$(dirname "$0")" && pwd)

for m in cls cls_f16 multilabel ner encoder; do
	if [ ! -f "$fixtures/$m/model.safetensors" ]; then
		echo "prepare.sh: fixture model $fixtures/$m is missing" >&2
		exit 1
	fi
done

mkdir -p "$dir"
rm -rf "$dir/models" "$dir/outside" "$dir/cli" "$dir/results"
mkdir -p "$dir/models" "$dir/outside" "$dir/cli"
m="$dir/models"

for f in cls cls_f16 multilabel ner encoder; do
	cp -R "$fixtures/$f" "$m/$f"
done
# the shipped starter models (models/ of the repository; the starter test)
for f in "$here"/../../models/finbert-*; do
	[ -f "$f/model.safetensors" ] && cp -R "$f" "$m/$(basename "$f")"
done
ln -s cls "$m/cls_link"

# checkpoints as their authors publish them (the formats test): a
# torch.save zip, a run_classifier.py TensorFlow checkpoint, sharded
# safetensors, model.safetensors beside a different pytorch_model.bin, and
# a pytorch_model.bin whose pickle calls os.system
mkdir "$m/formats"
for f in bin_zip_cls tf_bert_classifier st_sharded both_differ bin_evil; do
	cp -R "$fixtures/../formats/$f" "$m/formats/$f"
done

# config.json that is not JSON
cp -R "$m/cls" "$m/bad_config"
printf '{"model_type": "bert", "hidden_size": ' >"$m/bad_config/config.json"

# weights cut short: the header claims more than the file holds
cp -R "$m/cls" "$m/bad_weights"
head -c 1000 "$m/cls/model.safetensors" >"$m/bad_weights/model.safetensors"

# config.json disagreeing with the tensor shapes
cp -R "$m/cls" "$m/bad_shape"
sed 's/"hidden_size": 32/"hidden_size": 48/' "$m/cls/config.json" >"$m/bad_shape/config.json"

# vocabulary smaller than the embedding matrix
cp -R "$m/cls" "$m/bad_vocab"
head -n 1000 "$m/cls/vocab.txt" >"$m/bad_vocab/vocab.txt"

# no weight file at all
cp -R "$m/cls" "$m/no_weights"
rm "$m/no_weights/model.safetensors"

# a model whose weights the errors test overwrites after registering it
cp -R "$m/cls" "$m/mutable"
# a model whose config.json the worker test overwrites after registering it
cp -R "$m/cls" "$m/fragile"

# escapes through symbolic links
cp -R "$m/cls" "$dir/outside/cls"
ln -s ../outside/cls "$m/escape_dir"
mkdir "$m/escape_file"
cp "$m/cls/config.json" "$m/cls/vocab.txt" "$m/cls/tokenizer_config.json" "$m/escape_file/"
ln -s ../../outside/cls/model.safetensors "$m/escape_file/model.safetensors"

# Reference outputs of the command-line tool on the parity inputs; the
# cli_parity test compares the SQL functions with them.
in="$here/parity.txt"
cp "$in" "$dir/cli/input.txt"
run_cli() {
	out=$1
	shift
	# a failure shows up as a difference in the cli_parity test
	"$cli" "$@" <"$in" >"$dir/cli/$out" ||
		echo "prepare.sh: warning: finbert-cli $* failed" >&2
}
run_cli cls.jsonl classify "$m/cls"
run_cli multilabel.jsonl classify "$m/multilabel"
run_cli ner.jsonl entities "$m/ner"
run_cli encoder_mean.jsonl embed "$m/encoder" --pooling mean --normalize
run_cli encoder_cls.jsonl embed "$m/encoder" --pooling cls --normalize
run_cli tokenize.jsonl tokenize "$m/encoder"

cat >"$dir/regress.conf" <<EOF
shared_preload_libraries = 'finbert'
finbert.model_dir = '$m'
# read by the cli_parity test
regress.cli_dir = '$dir/cli'
max_parallel_workers_per_gather = 0
# the embedding cache of the test database (the cache test)
finbert.database = 'contrib_regression'
EOF

# The suite runs a second time with every request sent to the background
# worker; its expected output is the same.
{
	cat "$dir/regress.conf"
	echo "finbert.execution = worker"
} >"$dir/regress-worker.conf"
