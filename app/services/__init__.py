"""Operations that change several rows, write audit entries or queue work in one transaction."""
