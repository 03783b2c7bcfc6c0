-- random ml1m user per request (original ids 0..6017)
math.randomseed(42)
request = function()
  return wrk.format("GET", "/recommendations/" .. math.random(0, 6017) .. "?k=10")
end
