/*
 * fn_test_fds.h — what the Kafka bridge tests check of the process's file descriptors: how
 * many are open, and that fd 0 is still the file it was (a close of fd 0 by a handle that
 * never opened a pipe would not change the count if something reopened it).
 */
#ifndef FN_TEST_FDS_H
#define FN_TEST_FDS_H

#include <dirent.h>
#include <stdbool.h>
#include <sys/stat.h>

/* Open descriptors of this process, from /proc/self/fd; -1 if it cannot be read. */
static int fn_test_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(dir));)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1; /* the directory's own */
}

static struct stat fn_test_fd0;

/* Remembers what fd 0 is; false if it is not open. */
static bool fn_test_fd0_note(void)
{
    return fstat(0, &fn_test_fd0) == 0;
}

/* fd 0 is still the file fn_test_fd0_note saw. */
static bool fn_test_fd0_intact(void)
{
    struct stat st;
    return fstat(0, &st) == 0 && st.st_dev == fn_test_fd0.st_dev && st.st_ino == fn_test_fd0.st_ino;
}

#endif
