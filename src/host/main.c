// main.c — placeholder entry point until the CLI lands.
#include <stdio.h>
int main(void) { puts("mnrl_cuda " MNRL_VERSION); return 0; }
