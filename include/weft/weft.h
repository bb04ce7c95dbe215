/* weft — a multi-reactor network framework for C. The umbrella header.
 *
 * Conventions used in every header:
 * - Functions return 0 or a count on success and a negative WEFT_E* code on failure.
 * - "borrowed until X": weft may read the memory until X; the caller keeps ownership.
 * - "owned by the caller": the caller frees it. "ownership passes to weft": weft frees it.
 * - If a call that takes a callback fails, that callback never runs.
 */
#ifndef WEFT_H
#define WEFT_H

#include "weft/version.h"
#include "weft/error.h"
#include "weft/socket.h"
#include "weft/codec.h"
#include "weft/conn.h"
#include "weft/balancer.h"
#include "weft/pool.h"
#include "weft/engine.h"
#include "weft/group.h"
#include "weft/tls.h"
#include "weft/deprecated.h"

#endif /* WEFT_H */
