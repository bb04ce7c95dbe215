/* Decode throughput of the built-in codecs over an in-memory stream, beside memcpy of the
 * same bytes. For 64-byte and 4 KiB frames it prints GB/s of stream decoded and the codec's
 * time as a multiple of memcpy's (lower is better; 1.0 = as fast as copying the bytes once).
 * Each figure is the best of several timed passes; the whole run takes a few seconds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/codec.h"

#define STREAM_BYTES (8u << 20) /* fits a large cache poorly, like real reads */
#define PASS_SECONDS 0.12

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct stream {
    uint8_t *bytes;
    size_t len;
    size_t frames;
} stream;

/* Frames of `payload` bytes through the codec's own encoder until STREAM_BYTES is reached. */
static void build(const weft_codec *codec, size_t payload, stream *s)
{
    uint8_t *body = malloc(payload);
    for (size_t i = 0; i < payload; i++)
        body[i] = (uint8_t)('a' + i % 26); /* no delimiter bytes */
    s->bytes = malloc(STREAM_BYTES + 64);
    s->len = 0;
    s->frames = 0;
    for (;;) {
        weft_encoding enc;
        if (weft_codec_encode(codec, body, payload, &enc) != 0) {
            fprintf(stderr, "encode failed\n");
            exit(1);
        }
        size_t n = enc.head_len + payload + enc.tail_len;
        if (s->len + n > STREAM_BYTES)
            break;
        memcpy(s->bytes + s->len, enc.head, enc.head_len);
        memcpy(s->bytes + s->len + enc.head_len, body, payload);
        memcpy(s->bytes + s->len + enc.head_len + payload, enc.tail, enc.tail_len);
        s->len += n;
        s->frames++;
    }
    free(body);
}

static volatile size_t sink;

/* Best seconds per pass of decoding the whole stream the way the engine does. */
static double time_decode(const weft_codec *codec, const stream *s)
{
    double best = 1e9, start = now();
    do {
        weft_codec_state st;
        weft_codec_state_init(&st);
        double t0 = now();
        size_t pos = 0, frames = 0, bytes = 0;
        weft_frame f;
        while (weft_codec_decode(codec, &st, s->bytes + pos, s->len - pos, &f) == WEFT_FRAME) {
            bytes += f.length;
            frames++;
            pos += f.consumed;
        }
        double t = now() - t0;
        if (frames != s->frames || pos != s->len) {
            fprintf(stderr, "decoded %zu of %zu frames\n", frames, s->frames);
            exit(1);
        }
        sink += bytes;
        if (t < best)
            best = t;
    } while (now() - start < PASS_SECONDS);
    return best;
}

static double time_memcpy(const stream *s, uint8_t *dst)
{
    double best = 1e9, start = now();
    do {
        double t0 = now();
        memcpy(dst, s->bytes, s->len);
        double t = now() - t0;
        sink += dst[s->len - 1];
        if (t < best)
            best = t;
    } while (now() - start < PASS_SECONDS);
    return best;
}

static void config_for(const char *name, weft_codec_config *cfg, size_t payload)
{
    weft_codec_config_init(cfg);
    if (strcmp(name, "line") == 0) {
        cfg->kind = WEFT_CODEC_LINE;
    } else if (strcmp(name, "delimiter") == 0 || strcmp(name, "delimiter x3") == 0) {
        cfg->kind = WEFT_CODEC_DELIMITER;
        memcpy(cfg->delimiter.delimiters[0].bytes, "\r\n", 2);
        cfg->delimiter.delimiters[0].len = 2;
        cfg->delimiter.count = 1;
        if (strcmp(name, "delimiter x3") == 0) {
            memcpy(cfg->delimiter.delimiters[1].bytes, "|", 1);
            cfg->delimiter.delimiters[1].len = 1;
            memcpy(cfg->delimiter.delimiters[2].bytes, "END", 3);
            cfg->delimiter.delimiters[2].len = 3;
            cfg->delimiter.count = 3;
        }
    } else if (strcmp(name, "fixed_length") == 0) {
        cfg->kind = WEFT_CODEC_FIXED_LENGTH;
        cfg->fixed_length.frame_length = payload;
    } else {
        cfg->kind = WEFT_CODEC_LENGTH_FIELD;
        cfg->length_field.initial_bytes_to_strip = 4;
    }
}

int main(void)
{
    static const char *const names[] = {"length_field", "fixed_length", "line", "delimiter",
                                        "delimiter x3"};
    static const size_t sizes[] = {64, 4096};
    uint8_t *dst = malloc(STREAM_BYTES + 64);
    memset(dst, 1, STREAM_BYTES + 64);

    printf("%-14s %7s %12s %12s %14s\n", "codec", "frame", "decode GB/s", "memcpy GB/s",
           "time/memcpy");
    for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            weft_codec_config cfg;
            weft_codec codec;
            config_for(names[i], &cfg, sizes[z]);
            if (weft_codec_init(&codec, &cfg) != 0) {
                fprintf(stderr, "%s: bad config\n", names[i]);
                return 1;
            }
            stream s;
            build(&codec, sizes[z], &s);
            double td = time_decode(&codec, &s);
            double tm = time_memcpy(&s, dst);
            printf("%-14s %5zu B %12.2f %12.2f %13.2fx\n", names[i], sizes[z],
                   (double)s.len / td / 1e9, (double)s.len / tm / 1e9, td / tm);
            free(s.bytes);
            weft_codec_destroy(&codec);
        }
    }
    free(dst);
    return 0;
}
