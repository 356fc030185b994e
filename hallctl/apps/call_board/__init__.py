"""The call-order board app (叫号次序显示屏): :mod:`.content` builds what the board shows from the
hall's retained state (pure), :mod:`.app` drives the ``call_board`` device with it."""
