/*
 * sinkd-mkmodel: writes a valid GGUF model with seeded random weights at
 * any shape of any architecture sinkd runs, for benchmarks and tests at
 * real sizes.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "opt.h"
#include "quant.h"
#include "quant_mix.h"
#include "synth.h"

static void
usage(FILE *f)
{
	char names[512];

	qtype_supported_names(names, sizeof names, "|");
	fprintf(f,
"usage: sinkd-mkmodel -o OUT.gguf [--shape NAME]\n"
"                     [--arch llama|qwen2|qwen3|phi3|gemma2]\n"
"                     [--type T] [--n-embd N]\n"
"                     [--n-layer N] [--n-head N] [--n-head-kv N] [--n-ff N]\n"
"                     [--n-vocab N] [--vocab-from GGUF] [--ctx N]\n"
"                     [--rope-base F] [--tied] [--output-type T] [--seed S]\n"
"                     [--sliding-window N] [--attn-softcap F]\n"
"                     [--final-softcap F] [--rope-freqs] [--rope-llama3]\n"
"                     [--chat-template FILE] [--head-dim N]\n"
"\n"
"Writes a GGUF model with seeded random weights: same options, same file.\n"
"  --shape NAME      start from a known shape: tinyllama-1.1b, llama2-7b,\n"
"                    smollm-135m, gemma2-2b, tiny (explicit sizes override\n"
"                    it)\n"
"  --head-dim N      head size other than n_embd / n_head (key_length)\n"
"  --type T          type of the weight matrices (default F32; norms F32):\n"
"                    %s\n"
"                    or a K-quant mixture Q3_K_M, Q4_K_M, Q5_K_M (Q6_K\n"
"                    output and, in about half the layers, attn_v and\n"
"                    ffn_down, like llama-quantize's; engine/quant_mix.h)\n"
"  --vocab-from GGUF copy the tokenizer (and vocabulary size) from a file\n"
"  --n-vocab N       size of a generated vocabulary (default 320)\n"
"  --chat-template FILE  tokenizer.chat_template from FILE (instead of\n"
"                    --vocab-from's)\n"
"  --tied            no output matrix: the embedding is reused\n"
"  --output-type T   type of the output matrix (any GGUF type; types sinkd\n"
"                    cannot compute are written as zeros)\n"
"  --sliding-window N  attention window: every layer (llama) or the\n"
"                    even ones (gemma2, default 4096)\n"
"  --attn-softcap F, --final-softcap F  gemma2's (default 50, 30)\n"
"  --rope-freqs      llama: Llama-3.1 rope factors in rope_freqs.weight\n"
"  --rope-llama3     llama: the same as rope.scaling.* keys\n", names);
}

enum {
	O_ARCH = 256, O_TYPE, O_EMBD, O_LAYER, O_HEAD, O_HEADKV, O_FF, O_VOCAB,
	O_VFROM, O_CTX, O_SEED, O_SHAPE, O_TIED, O_ROPE, O_OUTTYPE, O_SWA,
	O_ACAP, O_FCAP, O_FREQS, O_L3KEYS, O_TMPL, O_HDIM,
};

static const struct option long_opts[] = {
	{ "arch", required_argument, NULL, O_ARCH },
	{ "type", required_argument, NULL, O_TYPE },
	{ "n-embd", required_argument, NULL, O_EMBD },
	{ "n-layer", required_argument, NULL, O_LAYER },
	{ "n-head", required_argument, NULL, O_HEAD },
	{ "n-head-kv", required_argument, NULL, O_HEADKV },
	{ "n-ff", required_argument, NULL, O_FF },
	{ "n-vocab", required_argument, NULL, O_VOCAB },
	{ "vocab-from", required_argument, NULL, O_VFROM },
	{ "chat-template", required_argument, NULL, O_TMPL },
	{ "ctx", required_argument, NULL, O_CTX },
	{ "seed", required_argument, NULL, O_SEED },
	{ "shape", required_argument, NULL, O_SHAPE },
	{ "rope-base", required_argument, NULL, O_ROPE },
	{ "tied", no_argument, NULL, O_TIED },
	{ "output-type", required_argument, NULL, O_OUTTYPE },
	{ "sliding-window", required_argument, NULL, O_SWA },
	{ "head-dim", required_argument, NULL, O_HDIM },
	{ "attn-softcap", required_argument, NULL, O_ACAP },
	{ "final-softcap", required_argument, NULL, O_FCAP },
	{ "rope-freqs", no_argument, NULL, O_FREQS },
	{ "rope-llama3", no_argument, NULL, O_L3KEYS },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int
set_size(int c, const char *arg, struct synth_opts *o, char *cause)
{
	static const struct { int c; const char *name; } names[] = {
		{ O_EMBD, "--n-embd" }, { O_LAYER, "--n-layer" },
		{ O_HEAD, "--n-head" }, { O_HEADKV, "--n-head-kv" },
		{ O_FF, "--n-ff" }, { O_VOCAB, "--n-vocab" }, { O_CTX, "--ctx" },
		{ O_SWA, "--sliding-window" }, { O_HDIM, "--head-dim" },
	};
	int32_t *dst[] = { &o->n_embd, &o->n_layer, &o->n_head,
		&o->n_head_kv, &o->n_ff, &o->n_vocab, &o->n_ctx, &o->n_swa,
		&o->head_dim };
	size_t i;
	long v;

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (names[i].c != c)
			continue;
		if (opt_long(names[i].name, arg, 1, 1 << 24, &v, cause) != 0)
			return -1;
		*dst[i] = (int32_t)v;
		return 0;
	}
	return err_set(cause, "unknown option");
}

/* Shapes first, so explicit sizes override them whatever the order. */
static int
apply_shape(int argc, char **argv, struct synth_opts *o, char *cause)
{
	int c;

	while ((c = getopt_long(argc, argv, "o:h", long_opts, NULL)) != -1) {
		if (c == O_SHAPE && synth_shape(o, optarg, cause) != 0)
			return -1;
	}
	optind = 1;
	return 0;
}

static int
parse_args(int argc, char **argv, struct synth_opts *o, const char **out,
    char *cause)
{
	int c, t;

	opterr = 0;
	if (apply_shape(argc, argv, o, cause) != 0)
		return -1;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "o:h", long_opts, NULL)) != -1) {
		switch (c) {
		case 'o': *out = optarg; break;
		case 'h': usage(stdout); return 1;
		case O_ARCH: o->arch = optarg; break;
		case O_VFROM: o->vocab_from = optarg; break;
		case O_TMPL: o->chat_template = optarg; break;
		case O_TIED: o->tied = 1; break;
		case O_FREQS: o->rope_freqs = 1; break;
		case O_L3KEYS: o->rope_llama3_keys = 1; break;
		case O_ACAP:
		case O_FCAP:
			if (opt_float(c == O_ACAP ? "--attn-softcap" :
			    "--final-softcap", optarg, 0.01, 1e4, c == O_ACAP ?
			    &o->attn_softcap : &o->final_softcap, cause) != 0)
				return -1;
			break;
		case O_SHAPE: break;
		case O_SEED:
			if (opt_u64("--seed", optarg, &o->seed, cause) != 0)
				return -1;
			break;
		case O_ROPE:
			if (opt_float("--rope-base", optarg, 2, 1e9,
			    &o->rope_base, cause) != 0)
				return -1;
			break;
		case O_TYPE:
			o->mix = quant_mix_from_name(optarg);
			if (o->mix != QUANT_MIX_NONE) {
				o->type = quant_mix_base((enum quant_mix)o->mix);
				break;
			}
			if ((t = qtype_from_name(optarg)) < 0) {
				char names[512];

				qtype_supported_names(names, sizeof names,
				    ", ");
				return err_set(cause, "--type '%s' is not a "
				    "type (%s, Q3_K_M, Q4_K_M, Q5_K_M)", optarg,
				    names);
			}
			o->type = (uint32_t)t;
			break;
		case O_OUTTYPE:
			if ((t = qtype_from_name(optarg)) <= 0)
				return err_set(cause, "--output-type '%s' is not "
				    "a GGUF type other than F32", optarg);
			o->output_type = t;
			break;
		case '?': return err_set(cause, "bad usage (see --help)");
		default:
			if (set_size(c, optarg, o, cause) != 0)
				return -1;
		}
	}
	if (optind < argc)
		return err_set(cause, "unexpected argument '%s'", argv[optind]);
	if (*out == NULL)
		return err_set(cause, "no output file: give -o OUT.gguf");
	return synth_check(o, cause);
}

int
main(int argc, char **argv)
{
	struct synth_opts o = { .arch = "llama", .type = QT_F32 };
	const char *out = NULL;
	char cause[ERR_LEN];
	struct stat st;
	double t0;
	int rc;

	synth_shape(&o, "tiny", NULL);
	if ((rc = parse_args(argc, argv, &o, &out, cause)) != 0) {
		if (rc > 0)
			return 0;
		fprintf(stderr, "sinkd-mkmodel: %s\n", cause);
		return 2;
	}
	t0 = opt_now();
	if (synth_write(&o, out, cause) != 0) {
		fprintf(stderr, "sinkd-mkmodel: %s\n", cause);
		return 1;
	}
	if (stat(out, &st) == 0)
		fprintf(stderr, "sinkd-mkmodel: wrote %s (%s, %s, %.1f MiB) in "
		    "%.1f s\n", out, o.arch, o.mix != QUANT_MIX_NONE ?
		    quant_mix_name((enum quant_mix)o.mix) : qtype_name(o.type),
		    (double)st.st_size / 1048576.0, opt_now() - t0);
	return 0;
}
