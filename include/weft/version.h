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

/* printf-style arguments checked by the compiler: as C99 printf (%zu, %llu) everywhere,
 * which with mingw-w64 is gnu_printf (its plain printf is the Microsoft runtime's; weft
 * builds there with __USE_MINGW_ANSI_STDIO, whose printf family is C99's). */
#if defined(__MINGW32__)
#define WEFT_PRINTF(fmt, args) __attribute__((format(gnu_printf, fmt, args)))
#elif defined(__GNUC__)
#define WEFT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define WEFT_PRINTF(fmt, args)
#endif

#endif /* WEFT_VERSION_H */
