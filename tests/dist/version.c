/* version.c: the installed header's POLYIO_VERSION_* macros agree with the library's
 * polyio_version() and polyio_version_string(), and with VERSION given on the command line. */
#include <stdio.h>
#include <string.h>

#include <polyio.h>

int main(int argc, char **argv) {
    unsigned header = (POLYIO_VERSION_MAJOR << 16) | (POLYIO_VERSION_MINOR << 8) | POLYIO_VERSION_PATCH;
    char macros[32];
    snprintf(macros, sizeof macros, "%d.%d.%d", POLYIO_VERSION_MAJOR, POLYIO_VERSION_MINOR,
             POLYIO_VERSION_PATCH);
    if (argc != 2 || polyio_version() != header || strcmp(polyio_version_string(), macros) != 0 ||
        strcmp(macros, argv[1]) != 0) {
        fprintf(stderr, "version mismatch: header %s, library %s (0x%x), wanted %s\n", macros,
                polyio_version_string(), polyio_version(), argc == 2 ? argv[1] : "?");
        return 1;
    }
    printf("c: header and library are polyio %s\n", macros);
    return 0;
}
