#include <stdio.h>
#include <sq.h>
int main(void) { printf("sq %g\n", sq(12)); return 0; }
