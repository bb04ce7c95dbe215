SETTINGS=long
BACKEND=both
started=2026-12-02\ 02:48\ UTC
load_before=12.96\ 10.58\ 8.76
load_after=3.79\ 4.98\ 6.75
commit=5e44c03-dirty
ECHO_DESC=-d\ 3\ -r\ 5
IDLE_DESC=-n\ 10000\ -m\ both
REDIS_DESC=REPS=1\ N=100000\ NP=1000000
FAILED_SUITES=''
