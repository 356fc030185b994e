"""The voice caller (有声叫号): reading rules (:mod:`.reading`), the calls waiting to be said
(:mod:`.calls`) and the app that says them (:mod:`.app`)."""
