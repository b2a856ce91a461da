"""Where videos come from: the synthetic world (``world``), DAVIS-layout folders (``davis``),
in-memory frames (``frames``), and the in-memory ``Video`` they all produce."""
