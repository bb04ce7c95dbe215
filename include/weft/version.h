/* weft — version and export macro. */
#ifndef WEFT_VERSION_H
#define WEFT_VERSION_H

#define WEFT_VERSION_MAJOR  0
#define WEFT_VERSION_MINOR  1
#define WEFT_VERSION_PATCH  0
#define WEFT_VERSION_STRING "0.1.0"

/* Everything public is exported through WEFT_API; the library builds with
 * -fvisibility=hidden so nothing else leaks out of the shared object. On Windows weft is a
 * static library for now, so nothing is exported there. */
#if defined(WEFT_BUILDING_SHARED) && defined(__GNUC__) && !defined(_WIN32)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#endif /* WEFT_VERSION_H */
